"""`make kind-up` as a user meets it: three export lines, a gateway that answers the `openai` client, and every
pod running as a container under the node's real kubelet and containerd."""

from __future__ import annotations

import pytest
from openai import OpenAI

from testbed.kind import K8S_VERSION, NAMESPACE, KindCluster

pytestmark = pytest.mark.timeout(3600)


def test_kind_up_ends_with_the_three_export_lines(kind_cluster: KindCluster) -> None:
    assert set(kind_cluster.exports) == {"KUBECONFIG", "OPENAI_BASE_URL", "OPENAI_API_KEY"}
    assert kind_cluster.kubeconfig.is_file()
    assert kind_cluster.base_url.startswith("http://127.0.0.1:")
    assert kind_cluster.base_url.endswith("/v1")


def test_the_node_is_a_real_kubelet_on_containerd(kind_cluster: KindCluster) -> None:
    nodes = kind_cluster.get_json("nodes", "-l", "type!=kwok")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [kind_cluster.node_name]
    for node in nodes:
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == K8S_VERSION
        assert info["containerRuntimeVersion"].startswith("containerd://")
        assert node["metadata"]["labels"]["kubeinfer.dev/pool"] == kind_cluster.options.node_pool
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_every_pod_of_the_release_runs_in_a_container(kind_cluster: KindCluster) -> None:
    pods = kind_cluster.get_json("pods", "-n", NAMESPACE)["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    names = {p["metadata"]["name"] for p in running}
    assert any("operator" in n for n in names), names
    assert any("gateway" in n for n in names), names
    for pod in running:
        for status in pod["status"]["containerStatuses"]:
            assert status["containerID"].startswith("containerd://"), (pod["metadata"]["name"], status)
            assert status["ready"], (pod["metadata"]["name"], status)
            assert status["imageID"], status


def test_the_gateway_answers_the_openai_client_through_the_printed_url(kind_cluster: KindCluster) -> None:
    client = OpenAI(base_url=kind_cluster.base_url, api_key=kind_cluster.api_key, timeout=120, max_retries=3)
    models = [m.id for m in client.models.list().data]
    assert models, "the gateway lists no model"
    answer = client.chat.completions.create(
        model=models[0],
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
