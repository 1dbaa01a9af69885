"""`helm uninstall`'s pre-delete hook: delete the chart's ModelInstall, the BatchJobs `helm test` made and its Pod.

The operator puts a finalizer on every ModelInstall and BatchJob and removes it once it has cleaned up (install Jobs,
partial downloads, shard logs). Helm deletes custom resources after the operator's Deployment, so without this hook
they would keep their finalizers for ever and block the deletion of their namespace. Run before anything is deleted,
while the operator still runs, it deletes them and waits until they are gone; after TIMEOUT_SECONDS (an operator
that is down) it removes the finalizers itself, so an uninstall never hangs. Run by the chart's hook Job
(templates/uninstall-hook.yaml) as `python -c`, in the kubeinfer image. Environment: NAMESPACE, MODEL_INSTALL
(empty: none), BATCH_MARK (`metadata.helm-test` of the test's batches), TEST_POD (the `helm test` Pod, kept after
its run for its logs; hooks are not part of the release, so uninstall would leave it), TIMEOUT_SECONDS; KUBECONFIG,
when set, instead of the pod's ServiceAccount.
"""

from __future__ import annotations

import os
import time

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "kubeinfer.dev", "v1alpha1"


def main() -> None:
    namespace = os.environ["NAMESPACE"]
    mark = os.environ.get("BATCH_MARK", "")
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "120"))
    if os.environ.get("KUBECONFIG"):  # run from outside the cluster (tests/cluster/test_chart.py)
        config.load_kube_config()
    else:
        config.load_incluster_config()
    api = client.CustomObjectsApi()
    targets = [("modelinstalls", name) for name in [os.environ.get("MODEL_INSTALL", "")] if name]
    if mark:
        batches = api.list_namespaced_custom_object(GROUP, VERSION, namespace, "batchjobs")["items"]
        targets += [
            ("batchjobs", b["metadata"]["name"])
            for b in batches
            if ((b.get("spec") or {}).get("metadata") or {}).get("helm-test") == mark
        ]
    for plural, name in targets:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            print(f"deleting {plural}/{name}", flush=True)
        except ApiException as exc:
            if exc.status != 404:
                raise
    left = targets
    while left:
        left = [(plural, name) for plural, name in left if exists(api, namespace, plural, name)]
        if left and time.monotonic() > deadline:
            for plural, name in left:
                print(f"{plural}/{name}: the operator did not finish it in time; removing its finalizers", flush=True)
                try:
                    api.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, name, {"metadata": {"finalizers": None}}
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            deadline = float("inf")
        time.sleep(1)
    print(f"gone: {', '.join(f'{plural}/{name}' for plural, name in targets) or 'nothing to delete'}", flush=True)
    if test_pod := os.environ.get("TEST_POD"):
        try:
            client.CoreV1Api().delete_namespaced_pod(test_pod, namespace)
            print(f"deleted pod/{test_pod}", flush=True)
        except ApiException as exc:
            if exc.status != 404:
                raise


def exists(api: client.CustomObjectsApi, namespace: str, plural: str, name: str) -> bool:
    try:
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


if __name__ == "__main__":
    main()
