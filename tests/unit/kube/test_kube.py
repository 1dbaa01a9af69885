"""The Kubernetes adapter without a cluster: owner references, conditions, error translation, the client factory."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import urllib3
import yaml
from kubernetes.client import ApiException

from kubeinfer.kube.client import api_client, retry_policy
from kubeinfer.kube.conditions import condition
from kubeinfer.kube.errors import (
    ClusterError,
    ClusterUnreachable,
    Conflict,
    Forbidden,
    Invalid,
    NoConfiguration,
    NotFound,
    call,
    translate,
)
from kubeinfer.kube.objects import owner_reference, result_config_map

BODY = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "b", "uid": "u-1"}}


def test_owner_reference_names_the_owner_and_controls_it_unless_told_otherwise() -> None:
    assert owner_reference(BODY) == {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BatchJob",
        "name": "b",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert "controller" not in owner_reference(BODY, controller=False)


def test_result_config_map_carries_the_json_and_the_owner() -> None:
    body = result_config_map("r", {"ok": True}, owner_reference(BODY))
    assert body["data"] == {"result.json": '{"ok": true}'}
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert result_config_map("r", {})["metadata"]["ownerReferences"] == []


def test_condition_has_the_standard_shape_and_a_bounded_message() -> None:
    made = condition("Ready", False, "Oops", "x" * 5000, 3)
    assert (made["type"], made["status"], made["reason"], made["observedGeneration"]) == ("Ready", "False", "Oops", 3)
    assert len(made["message"]) == 2000
    assert made["lastTransitionTime"].endswith("Z")
    assert condition("Ready", "Unknown", "Wait", "", None)["status"] == "Unknown"


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (404, NotFound, "pod p not found"),
        (403, Forbidden, "pod p: the API server refused the request (403 no)"),
        (409, Conflict, "pod p: no"),
        (422, Invalid, "pod p: no"),
        (500, ClusterError, "pod p: the API server answered HTTP 500: no"),
    ],
)
def test_api_answers_become_the_error_a_user_can_act_on(status: int, kind: type[ClusterError], text: str) -> None:
    error = ApiException(status=status, reason="no")
    translated = translate(error, "pod p")
    assert type(translated) is kind
    assert str(translated) == text


def test_a_connection_error_names_the_server() -> None:
    error = translate(urllib3.exceptions.NewConnectionError(None, "refused"), "pods", "https://h:6443")  # type: ignore[arg-type]
    assert isinstance(error, ClusterUnreachable)
    assert str(error).startswith("cannot reach the Kubernetes API server at https://h:6443 (pods)")


def test_call_passes_results_through_and_translates_failures() -> None:
    assert call(lambda: 7, "seven") == 7

    def missing() -> None:
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(NotFound, match="thing not found"):
        call(missing, "thing")


def test_retry_policy_retries_throttling_and_server_errors_but_fails_fast_on_a_refused_connection() -> None:
    policy = retry_policy()
    assert set(policy.status_forcelist or ()) == {429, 500, 502, 503, 504}
    assert policy.respect_retry_after_header
    assert policy.connect == 2


def test_a_missing_or_broken_kubeconfig_is_no_configuration(tmp_path: Path) -> None:
    with pytest.raises(NoConfiguration, match=f"kubeconfig {tmp_path / 'none'} does not exist"):
        api_client(tmp_path / "none")
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(NoConfiguration, match="cannot load a Kubernetes configuration"):
        api_client(broken)


def test_one_client_per_kubeconfig_and_context_with_the_retry_policy(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    clusters = [{"name": n, "cluster": {"server": f"https://127.0.0.{i}:{port}"}} for i, n in ((1, "a"), (2, "b"))]
    contexts = [{"name": n, "context": {"cluster": n, "user": "u"}} for n in ("a", "b")]
    document = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "contexts": contexts}
    document |= {"users": [{"name": "u", "user": {"token": "t"}}], "current-context": "a"}
    kubeconfig.write_text(yaml.safe_dump(document))
    default, other = api_client(kubeconfig), api_client(kubeconfig, "b")
    assert default is api_client(kubeconfig)
    assert default.configuration.host == f"https://127.0.0.1:{port}"
    assert other.configuration.host == f"https://127.0.0.2:{port}"
    assert other.configuration.retries.respect_retry_after_header
