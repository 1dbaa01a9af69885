"""A model server pod stopped with SIGSTOP is restarted by its liveness probe, as a kubelet would.

The embedded gateway's watchdog is tested in tests/engine/test_watchdog.py; in the cluster the kubelet's
probes take its place. The operator's server Deployment is applied as built, and the kubelet stand-in runs
it as a process and applies its probes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kubeinfer.operator.builders.model_install import build_server_deployment
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.settings import OperatorSettings, Settings
from testbed.controlplane import Cluster
from testbed.namespace_env import apply, prepare_namespace
from testbed.wait import wait_for


def test_cluster_server_pod_stopped_with_sigstop_is_restarted_by_its_liveness_probe(
    kube_cluster: Cluster, local_node: object, settings: Settings, smollm2_gguf: Path
) -> None:
    """The operator's server Deployment, applied as built, on the kubelet stand-in, which applies its probes.

    The startup probe passes once the model has loaded; the stopped server then fails its liveness probe.
    """
    namespace, model = "kubeinfer-watchdog-test", "watchdog-probe"
    prepare_namespace(kube_cluster, namespace, settings.models_root)
    operator = OperatorSettings(pool_aliases={"cpu": "local"}, server_hang_seconds=5)
    spec = {
        "model": model,
        "source": {"pypi": "smollm2-135m"},
        "quantization": "Q4_1",
        "serving": {"pool": "cpu", "ctxSize": 1024, "parallel": 1, "threads": 1},
    }
    meta = {"name": "probe", "namespace": namespace}
    body = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "ModelInstall", "metadata": meta, "spec": spec}
    parsed = ModelInstall.model_validate(body)
    relative = str(smollm2_gguf.relative_to(settings.models_root))
    deployment = build_server_deployment(
        {**body, "metadata": {**meta, "uid": "u-1"}}, parsed, relative, "Q4_1", 10**8, operator
    )
    deployment["metadata"].pop("ownerReferences")  # no ModelInstall exists: the collector would delete it
    labels = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    apply(kube_cluster, [deployment], namespace)
    stopped_pid: int | None = None

    def server() -> tuple[int, int] | None:
        """(restart count, pid) of the ready server container."""
        pods = kube_cluster.get_json("pods", "-n", namespace, "-l", labels)["items"]
        statuses = [s for p in pods for s in p.get("status", {}).get("containerStatuses", [])]
        pids = _pids_with(model)
        if len(statuses) == 1 and statuses[0]["ready"] and len(pids) == 1:
            return int(statuses[0]["restartCount"]), pids[0]
        return None

    try:
        restarts, pid = wait_for(server, timeout=300, what="the server pod ready")
        os.kill(pid, signal.SIGSTOP)
        stopped_pid, stopped = pid, time.monotonic()

        def restarted() -> tuple[int, int] | None:
            current = server()
            return current if current is not None and current[0] > restarts else None

        again, new_pid = wait_for(restarted, timeout=180, what="the server restarted and ready")
        print(f"cluster: SIGSTOP to ready again: {time.monotonic() - stopped:.1f} s")
        assert again == restarts + 1
        assert new_pid != pid
        assert not _alive(pid)
    finally:
        if stopped_pid is not None and _alive(stopped_pid):
            os.kill(stopped_pid, signal.SIGKILL)
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _pids_with(marker: str) -> list[int]:
    """Live llama-server processes whose command line names `marker` (the stand-in runs pods as processes)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"llama-server") and marker.encode() in argv:
            pid = int(cmdline.parent.name)
            if _alive(pid):
                found.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
