"""The cluster-mode gateway's Role grants exactly the API calls its code makes, and binds only its own account."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from kubeinfer.gateway import cluster_batches, cluster_models
from kubeinfer.operator.names import GROUP
from kubeinfer.operator.rbac import GATEWAY_RULES, gateway_objects

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


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_gateway_rules_are_exactly_the_calls_of_cluster_batches_and_cluster_models() -> None:
    calls = custom_object_calls(cluster_batches) | custom_object_calls(cluster_models)
    assert calls == {
        (GROUP, "batchjobs", "create"),
        (GROUP, "batchjobs", "get"),
        (GROUP, "batchjobs", "list"),
        (GROUP, "batchjobs", "patch"),
        (GROUP, "modelinstalls", "list"),
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
