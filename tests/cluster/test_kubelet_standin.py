"""The kubelet stand-in runs pods bound to local-exec for real: llama-server, Jobs, deletion, images, RBAC."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hack.kubelet_standin import StandIn
from testbed.controlplane import Cluster
from testbed.namespace_env import scratch_namespace
from testbed.wait import wait_for

LLAMA_IMAGE = "ghcr.io/kubeinfer/llama-server:0.3.36"
KUBEINFER_IMAGE = "ghcr.io/kubeinfer/kubeinfer:dev"
LOCAL = {
    "nodeSelector": {"kubeinfer.dev/pool": "local"},
    "tolerations": [{"key": "kubeinfer.dev/pool", "operator": "Equal", "value": "local", "effect": "NoSchedule"}],
}


@pytest.fixture(scope="module")
def api(kube_cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(str(kube_cluster.kubeconfig))


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(kube_cluster: Cluster, local_node: StandIn) -> Iterator[str]:
    """A namespace per test; deleting it at the end makes the stand-in stop whatever the test left running."""
    with scratch_namespace(kube_cluster, "standin") as name:
        yield name


def _pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": command} | spec.pop("container", {})
    return {"metadata": {"name": name}, "spec": {**LOCAL, "containers": [container], **spec}}


def _llama_pod(name: str) -> dict[str, Any]:
    model = "/models/smollm2-135m/smollm2-135m.Q4_1.gguf"
    command = ["llama-server", "--model", model, "--host", "0.0.0.0", "--port", "8080", "--threads", "1"]
    return _pod(
        name,
        LLAMA_IMAGE,
        [*command, "--ctx-size", "512"],
        volumes=[{"name": "model-cache", "emptyDir": {}}],
        container={
            "volumeMounts": [{"name": "model-cache", "mountPath": "/models"}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
        },
    )


def _status(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    pod = core.read_namespaced_pod(name, namespace, _preload_content=False)
    return dict(json.loads(pod.data)["status"])


def _ready_ip(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    status = _status(core, namespace, name)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
    return status.get("podIP") if ready else None


def _phase(core: client.CoreV1Api, namespace: str, name: str, phases: tuple[str, ...]) -> dict[str, Any] | None:
    status = _status(core, namespace, name)
    return status if status.get("phase") in phases else None


def _gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as err:
        return err.status == 404
    return False


def _chat(ip: str) -> str:
    body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    response = httpx.post(f"http://{ip}:8080/v1/chat/completions", json=body, timeout=120, trust_env=False)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def test_llama_server_pod_becomes_ready_and_answers_on_its_pod_ip(
    core: client.CoreV1Api, namespace: str, smollm2_gguf: Path
) -> None:
    core.create_namespaced_pod(namespace, _llama_pod("llama"))
    ip = wait_for(lambda: _ready_ip(core, namespace, "llama"), timeout=180, what="llama pod Ready with an IP")
    status = _status(core, namespace, "llama")
    assert status["phase"] == "Running"
    assert status["podIPs"] == [{"ip": ip}]
    assert status["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert _chat(ip)


def test_two_llama_server_pods_get_distinct_ips_on_the_same_port(
    core: client.CoreV1Api, namespace: str, smollm2_gguf: Path
) -> None:
    for name in ("llama-a", "llama-b"):
        core.create_namespaced_pod(namespace, _llama_pod(name))
    ips = [wait_for(lambda n=n: _ready_ip(core, namespace, n), timeout=180, what=n) for n in ("llama-a", "llama-b")]
    assert ips[0] != ips[1]
    assert all(_chat(ip) for ip in ips)


def _job(name: str, command: list[str]) -> dict[str, Any]:
    template = _pod(name, KUBEINFER_IMAGE, command, restartPolicy="Never")
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": template["spec"]}}}


def _job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    job = json.loads(batch.read_namespaced_job(name, namespace, _preload_content=False).data)
    done = [c["type"] for c in job.get("status", {}).get("conditions", []) if c["type"] in ("Complete", "Failed")]
    return done[0] if done else None


def test_jobs_complete_and_fail_through_the_job_controller(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, _job("ok", ["kubeinfer", "--help"]))
    batch.create_namespaced_job(namespace, _job("exit3", ["python", "-c", "import sys; sys.exit(3)"]))
    assert wait_for(lambda: _job_condition(batch, namespace, "ok"), timeout=120, what="job ok") == "Complete"
    assert wait_for(lambda: _job_condition(batch, namespace, "exit3"), timeout=120, what="job exit3") == "Failed"
    pods = json.loads(core.list_namespaced_pod(namespace, label_selector="job-name=exit3", _preload_content=False).data)
    terminated = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_deleting_a_running_pod_stops_its_process_and_removes_the_pod(
    core: client.CoreV1Api, namespace: str, local_node: StandIn
) -> None:
    sleeper = _pod("sleeper", KUBEINFER_IMAGE, ["python", "-c", "import time; time.sleep(600)"])
    core.create_namespaced_pod(namespace, sleeper)
    wait_for(lambda: _phase(core, namespace, "sleeper", ("Running",)), timeout=60, what="sleeper Running")
    worker = local_node.pod(namespace, "sleeper")
    assert worker is not None
    assert worker.net is not None
    process = worker.containers[0].proc
    assert process is not None
    pid, netns = process.pid, worker.net.netns
    core.delete_namespaced_pod("sleeper", namespace)
    wait_for(lambda: _gone(core, namespace, "sleeper"), timeout=60, what="sleeper deleted")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_pod_with_an_image_without_local_equivalent_fails_image_not_runnable(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, _pod("nginx", "docker.io/library/nginx:1.27", ["nginx"]))
    status = wait_for(lambda: _phase(core, namespace, "nginx", ("Failed",)), timeout=60, what="nginx Failed")
    assert status["reason"] == "ImageNotRunnable"
    assert "nginx" in status["message"]


def test_in_pod_code_acts_with_its_service_account_rbac(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"k": "v"}})
    script = (
        "from kubernetes import client, config; config.load_config(); "
        f"print(client.CoreV1Api().read_namespaced_config_map('settings', '{namespace}').data)"
    )

    def run(name: str) -> dict[str, Any]:
        core.create_namespaced_pod(
            namespace,
            _pod(name, KUBEINFER_IMAGE, ["python", "-c", script], restartPolicy="Never", serviceAccountName="reader"),
        )
        status = wait_for(lambda: _phase(core, namespace, name, ("Succeeded", "Failed")), timeout=90, what=name)
        return dict(status["containerStatuses"][0]["state"]["terminated"])

    denied = run("before-grant")
    assert denied["exitCode"] != 0
    assert "Forbidden" in denied["message"] or "403" in denied["message"]

    rbac = client.RbacAuthorizationV1Api(api)
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "read-configmaps"}, "rules": [rule]})
    binding = {
        "metadata": {"name": "reader-reads-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    rbac.create_namespaced_role_binding(namespace, binding)
    allowed = run("after-grant")
    assert (allowed["exitCode"], allowed["reason"]) == (0, "Completed")


def test_restart_always_restarts_an_exited_container_and_counts_restarts(
    core: client.CoreV1Api, namespace: str
) -> None:
    crasher = _pod("crasher", KUBEINFER_IMAGE, ["python", "-c", "import sys; sys.exit(1)"], restartPolicy="Always")
    core.create_namespaced_pod(namespace, crasher)

    def restarted_twice() -> dict[str, Any] | None:
        statuses = _status(core, namespace, "crasher").get("containerStatuses", [])
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    container = wait_for(restarted_twice, timeout=60, what="two restarts (back-off 1 s, 2 s)")
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert _status(core, namespace, "crasher")["phase"] == "Running"


def test_simulate_oom_annotation_kills_the_container_and_reports_oom_killed(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = _pod("hog", KUBEINFER_IMAGE, ["python", "-c", "import time; time.sleep(600)"], restartPolicy="Never")
    pod["metadata"]["annotations"] = {"kubeinfer.dev/simulate-oom": "1"}
    core.create_namespaced_pod(namespace, pod)
    status = wait_for(lambda: _phase(core, namespace, "hog", ("Failed",)), timeout=60, what="hog Failed")
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


def test_config_map_volume_env_and_mount_paths_map_to_local_files(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "app"}, "data": {"greeting": "hello"}})
    check = (
        "import os, sys; ok = open(os.environ['CONFIG']).read() == 'hello' "
        "and os.environ['POD_IP'].startswith('10.244.250.') and os.environ['POD_NAME'] == 'reader'; "
        "sys.exit(0 if ok else 1)"
    )
    pod = _pod(
        "reader",
        KUBEINFER_IMAGE,
        ["python", "-c", check],
        restartPolicy="Never",
        volumes=[{"name": "app", "configMap": {"name": "app"}}],
        container={
            "volumeMounts": [{"name": "app", "mountPath": "/etc/app"}],
            "env": [
                {"name": "CONFIG", "value": "/etc/app/greeting"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        },
    )
    core.create_namespaced_pod(namespace, pod)
    status = wait_for(lambda: _phase(core, namespace, "reader", ("Succeeded", "Failed")), timeout=60, what="reader")
    assert status["phase"] == "Succeeded", status["containerStatuses"][0]["state"]


def test_failing_liveness_probe_restarts_the_container(core: client.CoreV1Api, namespace: str) -> None:
    pod = _pod(
        "unhealthy",
        KUBEINFER_IMAGE,
        ["python", "-m", "http.server", "8000"],
        terminationGracePeriodSeconds=1,
        container={"livenessProbe": {"httpGet": {"path": "/missing", "port": 8000}, "periodSeconds": 1}},
    )
    core.create_namespaced_pod(namespace, pod)

    def restarted() -> bool:
        statuses = _status(core, namespace, "unhealthy").get("containerStatuses", [])
        return bool(statuses) and statuses[0]["restartCount"] >= 1

    wait_for(restarted, timeout=60, what="a restart after three failed liveness probes (404)")
