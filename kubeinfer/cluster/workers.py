"""Model-server and batch-worker pods of one namespace, read and acted on through the Kubernetes API only.

State, heartbeat and memory come from the API server: the pod's status, a worker's progress ConfigMap
(rewritten every 2 s while its shard runs) and, for a server run under `kubeinfer engine serve`, its
`GET /memory` through the API server's pod proxy. Logs come from `pods/log`; a restart deletes the pod so
that its Deployment or Job replaces it. Nothing here contacts a node directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from kubeinfer.kube.errors import ClusterError, Forbidden, NotFound, api_errors, translate
from kubeinfer.resources.names import (
    BATCH_LABEL,
    BATCH_PLURAL,
    COMPONENT_LABEL,
    GROUP,
    INSTALL_LABEL,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    MATRIX_LABEL,
    QUANT_LABEL,
    RESULT_KEY,
    VERSION,
)

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
#: Components whose pods `kubeinfer workers` shows: model servers and BatchJob shard workers.
COMPONENTS = {"server": "server", "worker": "worker"}
SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE},{COMPONENT_LABEL} in (server,worker)"
MEMORY_PORT_NAME = "memory"
REQUEST_TIMEOUT = 10


class NotOwned(ClusterError):
    """The pod exists but kubeinfer does not manage it, so deleting it would not bring it back."""


@dataclass
class WorkerStatus:
    """One pod; the same fields as the embedded gateway's `GET /v1/ops/workers` entries."""

    name: str
    kind: str
    model: str | None
    state: str
    ready: bool
    restarts: int
    #: Unix time of the last sign of life: the Ready condition's change (server) or the progress ConfigMap's
    #: last write (worker).
    last_heartbeat: float | None
    memory_bytes: int | None = None
    pid: int | None = None
    batch_id: str | None = None
    done: int | None = None
    total: int | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _time(stamp: Any) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def pod_state(pod: dict[str, Any]) -> tuple[str, bool, int, str | None]:
    """(state, ready, restarts, detail) from a pod's status, e.g. ("CrashLoopBackOff", False, 4, message)."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating", False, restarts, None
    for c in containers:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"], False, restarts, waiting.get("message")
    phase = status.get("phase", "Unknown")
    if phase == "Pending":
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return cond.get("reason") or "Unschedulable", False, restarts, cond.get("message")
    if phase == "Running" and not ready:
        return "NotReady", False, restarts, None
    if phase == "Failed":
        return "Failed", False, restarts, status.get("reason") or status.get("message")
    return phase, ready, restarts, None


def _ready_time(pod: dict[str, Any]) -> float | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return _time(cond.get("lastProbeTime")) or _time(cond.get("lastTransitionTime"))
    return None


def _config_map_written(cm: dict[str, Any]) -> float | None:
    """When a ConfigMap was last written: the newest managedFields entry, else its creation."""
    times = [_time(f.get("time")) for f in cm["metadata"].get("managedFields") or []]
    known = [t for t in times if t is not None]
    return max(known) if known else _time(cm["metadata"].get("creationTimestamp"))


def _memory_port(pod: dict[str, Any]) -> int | None:
    for container in pod["spec"].get("containers", []):
        for port in container.get("ports") or []:
            if port.get("name") == MEMORY_PORT_NAME:
                return int(port["containerPort"])
    return None


class ClusterWorkers:
    """kubeinfer's model-server and worker pods in one namespace."""

    def __init__(self, namespace: str, client: Any) -> None:
        from kubernetes.client import CoreV1Api, CustomObjectsApi

        self.namespace = namespace
        self.core = CoreV1Api(client)
        self.custom = CustomObjectsApi(client)

    def _call(self, what: str, method: Any, *args: Any, timeout: float | None = REQUEST_TIMEOUT, **kwargs: Any) -> Any:
        if timeout is not None:
            kwargs["_request_timeout"] = timeout
        try:
            return method(*args, **kwargs)
        except api_errors() as exc:
            raise translate(exc, what, self.core.api_client.configuration.host) from None

    def _json(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        response = self._call(what, method, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    def check_namespace(self) -> None:
        """A clear error for a namespace that does not exist (skipped when reading namespaces is forbidden)."""
        try:
            self._call(f"namespace {self.namespace}", self.core.read_namespace, self.namespace)
        except Forbidden:
            return
        except NotFound:
            raise NotFound(f"namespace {self.namespace} does not exist") from None

    def _pods(self) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = self._json(
            f"pods in namespace {self.namespace}",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=SELECTOR,
        )["items"]
        return sorted(pods, key=lambda p: (p["metadata"]["labels"].get(COMPONENT_LABEL), p["metadata"]["name"]))

    def _progress(self) -> dict[str, dict[str, Any]]:
        """The progress ConfigMaps of this namespace's shards, by name."""
        try:
            items = self._json(f"configmaps in {self.namespace}", self.core.list_namespaced_config_map, self.namespace)
        except Forbidden:
            return {}
        return {cm["metadata"]["name"]: cm for cm in items["items"] if "-shard-" in cm["metadata"]["name"]}

    def _batch_models(self) -> dict[str, str]:
        try:
            jobs = self._json(
                f"batchjobs in {self.namespace}",
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                BATCH_PLURAL,
            )["items"]
        except ClusterError:
            return {}
        return {j["metadata"]["name"]: (j.get("status") or {}).get("model") or j["spec"].get("model") for j in jobs}

    def memory(self, pod: dict[str, Any]) -> int | None:
        """RSS of a server supervised by `kubeinfer engine serve`, read through the API server's pod proxy."""
        port = _memory_port(pod)
        if port is None or (pod.get("status") or {}).get("phase") != "Running":
            return None
        try:
            body = self._call(
                f"memory of pod {pod['metadata']['name']}",
                self.core.connect_get_namespaced_pod_proxy_with_path,
                f"{pod['metadata']['name']}:{port}",
                self.namespace,
                "memory",
                _preload_content=False,
            )
            return int(json.loads(body.data)["rss_bytes"])
        except (ClusterError, ValueError, KeyError, TypeError):
            return None

    def status(self) -> list[WorkerStatus]:
        pods = self._pods()
        workers = [p for p in pods if p["metadata"]["labels"].get(COMPONENT_LABEL) == "worker"]
        progress = self._progress() if workers else {}
        models = self._batch_models() if workers else {}
        return [self._server(p) if p not in workers else self._worker(p, progress, models) for p in pods]

    def _server(self, pod: dict[str, Any]) -> WorkerStatus:
        labels = pod["metadata"]["labels"]
        state, ready, restarts, detail = pod_state(pod)
        model = labels.get(INSTALL_LABEL) or labels.get(MATRIX_LABEL)
        if model and labels.get(QUANT_LABEL):
            model = f"{model} ({labels[QUANT_LABEL]})"
        return WorkerStatus(
            name=pod["metadata"]["name"],
            kind="server",
            model=model,
            state=state,
            ready=ready,
            restarts=restarts,
            last_heartbeat=_ready_time(pod),
            memory_bytes=self.memory(pod),
            detail=detail,
        )

    def _worker(self, pod: dict[str, Any], progress: dict[str, dict[str, Any]], models: dict[str, str]) -> WorkerStatus:
        meta = pod["metadata"]
        batch = meta["labels"].get(BATCH_LABEL)
        index = meta["labels"].get(COMPLETION_INDEX) or (meta.get("annotations") or {}).get(COMPLETION_INDEX)
        state, ready, restarts, detail = pod_state(pod)
        cm = progress.get(f"{batch}-shard-{index}")
        done = total = None
        heartbeat = None
        if cm is not None:
            shard = json.loads((cm.get("data") or {}).get(RESULT_KEY) or "{}")
            done, total = int(shard.get("completed", 0)) + int(shard.get("failed", 0)), shard.get("total")
            heartbeat = _config_map_written(cm)
        return WorkerStatus(
            name=meta["name"],
            kind="worker",
            model=models.get(batch or ""),
            state=state,
            ready=ready,
            restarts=restarts,
            last_heartbeat=heartbeat,
            batch_id=batch,
            done=done,
            total=total,
            detail=detail or (f"shard {index}" if index is not None else None),
        )

    def _owned_pod(self, name: str) -> dict[str, Any]:
        try:
            pod: dict[str, Any] = self._json(f"pod {name}", self.core.read_namespaced_pod, name, self.namespace)
        except NotFound:
            raise NotFound(f"no pod named {name} in namespace {self.namespace}") from None
        labels = pod["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE or labels.get(COMPONENT_LABEL) not in COMPONENTS:
            raise NotOwned(f"pod {name} is not a kubeinfer model server or batch worker")
        return pod

    def logs(self, name: str, tail: int | None = 100, follow: bool = False) -> Iterator[bytes]:
        """The pod's log through `pods/log`: its last `tail` lines, then (follow) what it writes until it ends."""
        pod = self._owned_pod(name)
        container = pod["spec"]["containers"][0]["name"]
        response = self._call(
            f"log of pod {name}",
            self.core.read_namespaced_pod_log,
            name,
            self.namespace,
            container=container,
            tail_lines=tail,
            follow=follow,
            _preload_content=False,
            timeout=None if follow else REQUEST_TIMEOUT,  # a followed log may stay quiet for hours
        )

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(4096)
            finally:
                response.release_conn()

        return chunks()

    def restart(self, name: str) -> str:
        """Delete the pod; its Deployment or Job starts a replacement. Returns the deleted pod's uid."""
        pod = self._owned_pod(name)
        if not pod["metadata"].get("ownerReferences"):
            raise NotOwned(f"pod {name} has no owner (Deployment or Job) to replace it; not deleting it")
        uid: str = pod["metadata"]["uid"]
        self._call(f"delete pod {name}", self.core.delete_namespaced_pod, name, self.namespace)
        return uid
