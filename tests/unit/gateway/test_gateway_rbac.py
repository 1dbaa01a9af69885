"""The cluster-mode gateway's Role grants exactly the API calls its code makes, and binds only its own account."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from kubeinfer.cluster import endpoints, matrices, model_installs, workers
from kubeinfer.gateway import cluster_batches, cluster_models
from kubeinfer.operator.rbac import GATEWAY_RULES, gateway_objects
from kubeinfer.resources.names import GROUP

CALL = re.compile(r"(create|get|list|patch|replace|delete)_namespaced_custom_object(_status)?$")


def custom_object_calls(module: ModuleType) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every `*_namespaced_custom_object` call in the module's source."""
    tree = ast.parse(Path(str(module.__file__)).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (m := CALL.match(node.func.attr)):
            verb, status = m.group(1), m.group(2)
            verb = "update" if verb == "replace" else verb
            found.add((module.GROUP, module.PLURAL + ("/status" if status else ""), verb))
    return found


def endpoint_slice_calls(module: ModuleType) -> set[tuple[str, str, str]]:
    """("discovery.k8s.io", "endpointslices", verb) of every `*_namespaced_endpoint_slice` call in the module."""
    verbs = re.findall(r"\.(get|list)_namespaced_endpoint_slice\(", Path(str(module.__file__)).read_text())
    return {("discovery.k8s.io", "endpointslices", verb) for verb in verbs}


def config_map_calls(module: ModuleType) -> set[tuple[str, str, str]]:
    """("", "configmaps", verb) of every `*_namespaced_config_map` call in the module."""
    verbs = re.findall(r"\.(read|list|create)_namespaced_config_map\(", Path(str(module.__file__)).read_text())
    return {("", "configmaps", "get" if verb == "read" else verb) for verb in verbs}


def pod_calls(module: ModuleType) -> set[tuple[str, str, str]]:
    """("", "pods[/log|/proxy]", verb) of every pod call in the module, and its ConfigMap lists.

    Named, not only called: kubeinfer/cluster/workers.py hands the client's methods to one error wrapper.
    """
    source = Path(str(module.__file__)).read_text()
    verbs = {"read": "get", "list": "list", "delete": "delete"}
    found = {("", "pods", verbs[v]) for v in re.findall(r"\.(read|list|delete)_namespaced_pod\b", source)}
    found |= {("", "pods/log", "get") for _ in re.findall(r"\.read_namespaced_pod_log\b", source)}
    found |= {("", "pods/proxy", "get") for _ in re.findall(r"\.connect_get_namespaced_pod_proxy", source)}
    found |= {("", "configmaps", "list") for _ in re.findall(r"\.list_namespaced_config_map\b", source)}
    return found


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_gateway_rules_are_exactly_the_calls_of_cluster_batches_and_cluster_models() -> None:
    calls = custom_object_calls(cluster_batches) | custom_object_calls(cluster_models)
    calls |= custom_object_calls(endpoints) | endpoint_slice_calls(endpoints)  # single inference's replicas
    for console in (matrices, model_installs):  # the console's cluster pages
        calls |= custom_object_calls(console) | config_map_calls(console)
    calls |= custom_object_calls(workers) | pod_calls(workers)  # the logs page
    assert calls == {
        (GROUP, "batchjobs", "create"),
        (GROUP, "batchjobs", "get"),
        (GROUP, "batchjobs", "list"),
        (GROUP, "batchjobs", "patch"),
        (GROUP, "modelinstalls", "list"),
        (GROUP, "modelinstalls", "create"),
        (GROUP, "benchmarkmatrices", "get"),
        (GROUP, "benchmarkmatrices", "list"),
        ("", "configmaps", "get"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "delete"),
        ("", "pods/log", "get"),
        ("", "pods/proxy", "get"),
        ("", "configmaps", "list"),
    }
    assert granted(GATEWAY_RULES) == calls


def test_gateway_rules_never_grant_wildcards_or_watch() -> None:
    for rule in GATEWAY_RULES:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "watch" not in rule["verbs"]


def test_gateway_objects_bind_a_namespaced_role_to_the_gateway_account() -> None:
    account, role, binding = gateway_objects("team", "gw")
    assert (account["kind"], account["metadata"]) == ("ServiceAccount", {"name": "gw", "namespace": "team"})
    assert role["kind"] == "Role"
    assert role["metadata"] == {"name": "gw", "namespace": "team"}
    assert role["rules"] == GATEWAY_RULES
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"]["namespace"] == "team"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gw"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gw", "namespace": "team"}]
