"""A model server pod stopped with SIGSTOP is restarted by its liveness probe: the kind node's kubelet.

The embedded gateway's watchdog is tested in tests/engine/test_watchdog.py; in the cluster the kubelet's
probes take its place. The operator's server Deployment is applied as built and runs as a container of the
llama-server image on the kind node.
"""

from __future__ import annotations

import time
from pathlib import Path

from kubeinfer.operator.builders.model_install import build_server_deployment
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.settings import OperatorSettings
from testbed.kind import KindCluster
from testbed.namespace_env import apply, prepare_namespace
from testbed.wait import wait_for


def test_cluster_server_pod_stopped_with_sigstop_is_restarted_by_its_liveness_probe(
    kube_cluster: KindCluster, cluster_models_root: Path
) -> None:
    """The startup probe passes once the model has loaded; the stopped server then fails its liveness probe and
    the kubelet restarts the container."""
    namespace, model = "kubeinfer-watchdog-test", "watchdog-probe"
    prepare_namespace(kube_cluster, namespace, cluster_models_root)
    operator = OperatorSettings(pool_aliases={"cpu": kube_cluster.options.node_pool}, server_hang_seconds=5)
    spec = {
        "model": model,
        "source": {"pypi": "smollm2-135m"},
        "quantization": "Q4_1",
        "serving": {"pool": "cpu", "ctxSize": 1024, "parallel": 1, "threads": 1, "resources": {"cpu": "200m"}},
    }
    meta = {"name": "probe", "namespace": namespace}
    body = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "ModelInstall", "metadata": meta, "spec": spec}
    parsed = ModelInstall.model_validate(body)
    deployment = build_server_deployment(
        {**body, "metadata": {**meta, "uid": "u-1"}},
        parsed,
        "smollm2-135m/smollm2-135m.Q4_1.gguf",
        "Q4_1",
        10**8,
        operator,
    )
    deployment["metadata"].pop("ownerReferences")  # no ModelInstall exists: the collector would delete it
    labels = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    apply(kube_cluster, [deployment], namespace)

    def server() -> tuple[str, int, str] | None:
        """(pod, restart count, container id) of the ready server container."""
        pods = kube_cluster.get_json("pods", "-n", namespace, "-l", labels)["items"]
        ready = [
            (p["metadata"]["name"], s) for p in pods for s in p["status"].get("containerStatuses", []) if s["ready"]
        ]
        if len(pods) == 1 and len(ready) == 1:
            pod, status = ready[0]
            return pod, int(status["restartCount"]), str(status["containerID"])
        return None

    try:
        pod, restarts, container = wait_for(server, timeout=300, what="the server pod ready")
        assert container.startswith("containerd://")
        kube_cluster.kubectl("exec", "-n", namespace, pod, "--", "pkill", "-STOP", "-x", "llama-server")
        stopped = time.monotonic()

        def restarted() -> tuple[str, int, str] | None:
            current = server()
            return current if current is not None and current[1] > restarts else None

        same_pod, again, new_container = wait_for(restarted, timeout=180, what="the server restarted and ready")
        print(f"cluster: SIGSTOP to ready again: {time.monotonic() - stopped:.1f} s")
        assert (same_pod, again) == (pod, restarts + 1)
        assert new_container != container
        events = kube_cluster.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={pod}")
        assert any(e["reason"] == "Unhealthy" and "Liveness" in e["message"] for e in events["items"])
    finally:
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
