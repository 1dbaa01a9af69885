"""The least-privilege RBAC of the operator, its runner Jobs and the gateway; tests bind exactly these rules."""

from __future__ import annotations

from typing import Any

from kubeinfer.resources.names import GROUP

OPERATOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [GROUP],
        "resources": ["benchmarkmatrices", "modelinstalls", "batchjobs"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": ["benchmarkmatrices/status", "modelinstalls/status", "batchjobs/status"],
        "verbs": ["get", "patch"],
    },
    # kopf resolves resources through the CRDs and posts Events for each phase change; the doors list a
    # Job's Events to learn why it cannot create its pods (kubeinfer/kube/pod_start.py).
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    # Pods: benchmark servers; listed to spot an OOM-killed model server and a cancelled install's last pod.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
    # A ModelInstall's server: a Deployment (replaced when its pod template changes) and a Service, found ready
    # through its EndpointSlices.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
]

RUNNER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]},
    # Batch workers follow the model's server addresses in the EndpointSlices of its Service
    # (kubeinfer/cluster/endpoints.py), so a replaced server pod is found at its new address.
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
]

#: The gateway in cluster mode (kubeinfer/gateway/cluster_batches.py, cluster_models.py), in its one namespace.
GATEWAY_RULES: list[dict[str, Any]] = [
    # A batch is a BatchJob: created, read, listed, and cancelled by patching `spec.cancel`.
    {"apiGroups": [GROUP], "resources": ["batchjobs"], "verbs": ["create", "get", "list", "patch"]},
    # /v1/models and the console list the ModelInstalls; the console's install form creates them.
    {"apiGroups": [GROUP], "resources": ["modelinstalls"], "verbs": ["create", "list"]},
    # The console lists BenchmarkMatrices, reads one, and reads a finished matrix's report ConfigMap
    # (kubeinfer/cluster/matrices.py, model_installs.py).
    {"apiGroups": [GROUP], "resources": ["benchmarkmatrices"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    # Single inference goes to the replicas of the model's ModelInstall, found through its EndpointSlices.
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
    # The console's logs page (kubeinfer/cluster/workers.py): server and worker pods, their logs, a server's
    # memory through the pod proxy, the workers' progress ConfigMaps; a restart deletes a pod.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log", "pods/proxy"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]},
]


def operator_objects(namespace: str, service_account: str = "kubeinfer-operator") -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding for the operator of `namespace`.

    The cluster-scoped names carry the namespace, so operators of several namespaces (and a Helm release's
    `kubeinfer-operator`) each keep their own binding instead of replacing one another's subject.
    """
    name = f"kubeinfer-operator-{namespace}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service_account, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": OPERATOR_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        },
    ]


def runner_objects(namespace: str, service_account: str = "kubeinfer-runner") -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for runner Jobs in one namespace."""
    return _namespaced_objects(namespace, service_account, RUNNER_RULES)


def gateway_objects(namespace: str, service_account: str = "kubeinfer-gateway") -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the cluster-mode gateway in its namespace."""
    return _namespaced_objects(namespace, service_account, GATEWAY_RULES)


def _namespaced_objects(namespace: str, service_account: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service_account, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": service_account, "namespace": namespace},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": service_account, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": service_account},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        },
    ]
