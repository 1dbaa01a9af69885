"""The stand-in itself: keep the node Ready, watch the pods bound to it, hand each to a PodWorker."""

from __future__ import annotations

import base64
import json
import logging
import os
import sysconfig
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from kubernetes import config, watch
from kubernetes.client import CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from hack.kubelet_standin.logserver import LogServer
from hack.kubelet_standin.network import HOST_IP, delete_bridge_if_unused, ensure_bridge, reap_stale
from hack.kubelet_standin.pod import HostConfig, PodWorker, now_iso
from kubeinfer.engines.llamacpp_build import SDIST_VERSION, install_dir
from kubeinfer.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
WATCH_SECONDS = 5  # how long one watch request lasts; also bounds how long stop() waits for the watch thread


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def _host_config(api: CoreV1Api, node: str, state_dir: Path) -> HostConfig:
    """Paths on this machine, and the API server as pods reach it: through the bridge, with the same TLS name."""
    settings = Settings()
    cfg = api.api_client.configuration
    url = urlsplit(cfg.host)
    hostname = url.hostname or "localhost"
    server = cfg.host
    if hostname in ("127.0.0.1", "localhost", "::1"):  # a pod's loopback is its own
        server = f"{url.scheme}://{HOST_IP}:{url.port or 443}"
    path = [str(install_dir(settings.engines_root, SDIST_VERSION) / "bin"), sysconfig.get_path("scripts")]
    path += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return HostConfig(
        node=node,
        state_dir=state_dir,
        path=os.pathsep.join(path),
        models_root=settings.models_root,
        api_server=server,
        tls_server_name=hostname,
        ca_data=base64.b64encode(Path(cfg.ssl_ca_cert).read_bytes()).decode(),
    )


class StandIn:
    """A kubelet and container runtime for one node, good enough for kubeinfer's tests (see docs/kubelet-standin.md)."""

    def __init__(self, kubeconfig: Path, node: str, state_dir: Path) -> None:
        api_client = config.new_client_from_config(str(kubeconfig))
        self.core = CoreV1Api(api_client)
        self.leases = CoordinationV1Api(api_client)
        self.node = node
        self.state_dir = state_dir.resolve()
        self.host = _host_config(self.core, node, self.state_dir)
        self.workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready_since = now_iso()
        self.log_server: LogServer | None = None
        self._threads = [
            threading.Thread(target=self._heartbeat_loop, name="standin-heartbeat", daemon=True),
            threading.Thread(target=self._watch_loop, name="standin-watch", daemon=True),
        ]

    def start(self) -> StandIn:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        reap_stale()
        ensure_bridge()
        self.log_server = LogServer(HOST_IP, self.state_dir, self._container_log).start()
        self.heartbeat()  # the first one fails loudly: a wrong kubeconfig or node name should not go unnoticed
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and heartbeating, kill every process and remove every namespace this stand-in made."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(WATCH_SECONDS + 10)
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown(wait=False)
        for worker in workers:
            worker.shutdown(wait=True)
        if self.log_server is not None:
            self.log_server.stop()
        delete_bridge_if_unused()

    def pod(self, namespace: str, name: str) -> PodWorker | None:
        """The worker running a pod (its containers' processes and logs), if the pod is on this node."""
        with self._lock:
            return next((w for w in self.workers.values() if (w.namespace, w.name) == (namespace, name)), None)

    def _container_log(self, namespace: str, name: str, container: str) -> tuple[Path, Callable[[], bool]] | None:
        """The log file the kubelet API serves for a container, and whether more may still be written to it."""
        worker = self.pod(namespace, name)
        if worker is None:
            return None
        specs = [c["name"] for c in worker.pod["spec"].get("containers", [])]
        if container not in specs:
            return None
        running = next((c for c in worker.containers if c.spec["name"] == container), None)

        def alive() -> bool:
            return self.pod(namespace, name) is worker and (running is None or not running.done)

        return worker.dir / "logs" / f"{container}.log", alive

    # --- node -------------------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Post the node's status (Ready, capacity) and renew its Lease, as a kubelet does every 10 s."""
        now = now_iso()
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki", "pods": "110"}

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._ready_since,
            }

        status = {
            "capacity": capacity,
            "allocatable": capacity,
            # The API server reaches a kubelet at its first address of the first type in its preferred order,
            # Hostname first: the node's name resolves nowhere, so the Hostname address is the bridge IP too.
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": HOST_IP}],
            "conditions": [
                condition("Ready", "True", "KubeletReady", "kubelet stand-in is posting ready status"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_server.port if self.log_server else 0}},
            "nodeInfo": {
                "kubeletVersion": "v1.35.4",
                "containerRuntimeVersion": "kubeinfer-standin://0.1",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.core.patch_node_status(self.node, {"status": status})
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}
        try:
            self.leases.patch_namespaced_lease(self.node, "kube-node-lease", {"spec": spec})
        except ApiException as err:
            if err.status != 404:
                raise
            lease = {"metadata": {"name": self.node, "namespace": "kube-node-lease"}, "spec": spec}
            self.leases.create_namespaced_lease("kube-node-lease", lease)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except (ApiException, urllib3.exceptions.HTTPError) as err:
                log.warning("node heartbeat failed: %s", err)

    # --- pods -------------------------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        """List, then watch from the list's resourceVersion; relist when the watch expires (410) or breaks."""
        selector = f"spec.nodeName={self.node}"
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    response = self.core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False)
                    listing = json.loads(response.data)
                    version = listing["metadata"]["resourceVersion"]
                    self._resync(listing["items"])
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    deserialize=False,
                )
                for event in stream:
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._on_event(event["type"], event["object"])
                    if self._stopping.is_set():
                        break
            except ApiException as err:
                if err.status != 410:
                    log.warning("pod watch failed: %s", err)
                    self._stopping.wait(1)
                version = None
            except urllib3.exceptions.HTTPError as err:
                log.warning("pod watch broke: %s", err)
                self._stopping.wait(1)
                version = None

    def _resync(self, pods: list[dict[str, Any]]) -> None:
        listed = {pod["metadata"]["uid"] for pod in pods}
        with self._lock:
            vanished = [w for uid, w in self.workers.items() if uid not in listed]
        for worker in vanished:
            worker.forget()
        for pod in pods:
            self._on_event("ADDED", pod)

    def _on_event(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self._lock:
            if uid in self._finished:
                return
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.forget()
                return
            if worker is None:
                worker = PodWorker(self.core, self.host, pod, on_done=lambda: self._done(uid))
                self.workers[uid] = worker
                worker.start()
        if meta.get("deletionTimestamp"):
            worker.request_delete(float(meta.get("deletionGracePeriodSeconds") or 30))

    def _done(self, uid: str) -> None:
        with self._lock:
            self.workers.pop(uid, None)
            self._finished.add(uid)


def start_standin(
    kubeconfig: Path | str, node: str = "local-exec", state_dir: Path | str = ".cluster/standin"
) -> StandIn:
    """Start a stand-in for `node` in background threads; call `.stop()` to end it and clean up."""
    return StandIn(Path(kubeconfig), node, Path(state_dir)).start()
