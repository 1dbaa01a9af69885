"""A simulated runner pool for the operator scale benchmark: nodes whose runner Job pods "run" without a container.

SIMULATION. On kwok's nodes no container ever runs, so the operator's `kubeinfer step prepare|measure` Jobs
would never write their result ConfigMaps. This module stands in for the kubelet of a small `runner` pool
(nodes not annotated for kwok, so kwok leaves them alone): it heartbeats those nodes, watches the runner
pods the real scheduler binds to them, writes the `<job>-result` ConfigMap a real runner would write, and
only then reports the pod Succeeded, so the real Job controller completes the Job and the operator reads
the result through its real code path. Nothing else is simulated: the operator, the scheduler, the Job
controller and kwok's model-server pods on the CPU/GPU pools are the real ones.

The results' numbers: `prepare` sizes the server with kubeinfer's own sizing code on the real cached GGUF
(so the estimate is the one a real runner would write); `measure` writes fixed, plausible interactive-profile
figures (this machine's README numbers), because no model server answers on a kwok pod.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client import ApiClient, CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from kubeinfer.bench.preflight import plan_server
from kubeinfer.kube.objects import put_config_map, result_config_map
from kubeinfer.models.cache import ModelCache
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, BenchmarkMatrixSpec, Placement, ProfileResult
from kubeinfer.steps.results import OWNER_ENV

log = logging.getLogger(__name__)

RUNNER_POOL = "runner"
POOL_LABEL = "kubeinfer.dev/pool"
SIMULATED_ANNOTATION = "kubeinfer.dev/simulated-runner"
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
WATCH_SECONDS = 30

#: Interactive figures of the README's `make demo` on this machine (tokens/s, TTFT s), by quantization.
INTERACTIVE_FIGURES: dict[str, tuple[float, float]] = {
    "Q4_K_M": (112.5, 0.544),
    "Q8_0": (100.2, 0.542),
    "Q4_1": (95.4, 1.155),
}
DEFAULT_FIGURES = (100.0, 0.6)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runner_node(name: str) -> dict[str, Any]:
    """A node of the runner pool; no kwok annotation, so only this module serves its pods."""
    resources = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                POOL_LABEL: RUNNER_POOL,
            },
            "annotations": {SIMULATED_ANNOTATION: "true"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def parse_runner_command(command: list[str]) -> tuple[str, dict[str, str]]:
    """(`prepare`|`measure`, options) from `kubeinfer step <step> --cell K --result R ...`."""
    if command[:2] != ["kubeinfer", "step"] or len(command) < 3:
        raise ValueError(f"not a runner command: {command}")
    options: dict[str, str] = {}
    rest = command[3:]
    for flag, value in zip(rest[::2], rest[1::2], strict=False):
        if not flag.startswith("--"):
            raise ValueError(f"unexpected argument {flag!r} in {command}")
        options[flag[2:]] = value
    for required in ("cell", "result"):
        if required not in options:
            raise ValueError(f"--{required} missing from {command}")
    return command[2], options


@lru_cache(maxsize=256)
def _sized(path: Path, spec_json: str) -> tuple[int, int, int]:
    plan = plan_server(path, BenchmarkMatrixSpec.model_validate_json(spec_json))
    return plan.estimated_bytes, plan.ctx_size, plan.ctx_per_slot


def prepare_result(matrix: BenchmarkMatrix, cell: str, models_root: Path) -> dict[str, Any]:
    """What `kubeinfer step prepare` writes, sized by kubeinfer's own code on the cached GGUF."""
    model, _, quantization = cell.partition("/")
    cached = ModelCache(models_root).get(model, quantization)
    if cached is None:
        return {"error": f"model unavailable: {model}:{quantization} is not in the cache {models_root}"}
    # Placement decides where a server runs, not its size; leaving it out lets CPU and GPU matrices share one
    # reading of the GGUF (gguf-py takes about 10 s of CPU per file here).
    spec = matrix.spec.model_copy(update={"placement": Placement()})
    estimated, ctx_size, ctx_per_slot = _sized(cached.path, spec.model_dump_json(by_alias=True))
    return {
        "model_path": str(cached.path.relative_to(models_root)),
        "size_bytes": cached.size_bytes,
        "estimated_bytes": estimated,
        "ctx_size": ctx_size,
        "ctx_per_slot": ctx_per_slot,
    }


def measure_result(cell: str, profiles: list[str]) -> dict[str, Any]:
    """What `kubeinfer step measure` writes: unrated profile outcomes; memory was not measured."""
    quantization = cell.partition("/")[2]
    tokens_per_second, ttft = INTERACTIVE_FIGURES.get(quantization, DEFAULT_FIGURES)
    outcomes: dict[str, Any] = {}
    for name in profiles:
        if name == "interactive":
            metrics = {
                "ttft_seconds": ttft,
                "tokens_per_second": tokens_per_second,
                "variance_percent": 5.0,
                "server_ttft_seconds": ttft,
                "server_tokens_per_second": tokens_per_second,
                "runs": 1,
            }
            outcome = ProfileResult(status="passed", metrics=metrics)
        else:
            outcome = ProfileResult(status="skipped", reason=f"the simulated runner does not produce {name}")
        outcomes[name] = outcome.model_dump(mode="json")
    return {"profiles": outcomes, "memory": None, "memory_error": None}


def runner_result(container: dict[str, Any], models_root: Path) -> tuple[str, dict[str, Any]]:
    """(ConfigMap name, result) for one runner container, read from its command and KUBEINFER_MATRIX."""
    step, options = parse_runner_command(list(container["command"]) + list(container.get("args") or []))
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    if step == "prepare":
        matrix = BenchmarkMatrix.model_validate(json.loads(env["KUBEINFER_MATRIX"]))
        return options["result"], prepare_result(matrix, options["cell"], models_root)
    if step == "measure":
        profiles = [p for p in options.get("profiles", "").split(",") if p]
        return options["result"], measure_result(options["cell"], profiles)
    raise ValueError(f"unknown runner step {step!r}")


def succeeded_status(pod: dict[str, Any]) -> dict[str, Any]:
    """The status a kubelet posts for a pod whose containers all exited 0."""
    now = now_iso()
    containers = pod["spec"]["containers"]
    done = {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
    return {
        "phase": "Succeeded",
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastTransitionTime": now},
            done,
            {**done, "type": "ContainersReady"},
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            }
            for c in containers
        ],
    }


class RunnerPool:
    """Heartbeats the runner nodes and completes every runner pod bound to them (see the module docstring)."""

    def __init__(self, api: ApiClient, namespace: str, nodes: list[str], models_root: Path, workers: int = 4) -> None:
        self.core = CoreV1Api(api)
        self.leases = CoordinationV1Api(api)
        self.namespace = namespace
        self.nodes = nodes
        self.models_root = models_root
        self.completed = 0
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-runner")
        self._threads = [
            threading.Thread(target=self._heartbeat_loop, name="sim-heartbeat", daemon=True),
            threading.Thread(target=self._watch_loop, name="sim-watch", daemon=True),
        ]

    def start(self) -> RunnerPool:
        for name in self.nodes:
            try:
                self.core.create_node(runner_node(name))
            except ApiException as exc:
                if exc.status != 409:
                    raise
        self.heartbeat()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(WATCH_SECONDS + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- nodes ------------------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        now = now_iso()
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "simulated runner pool (perf/sim_runner.py)",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for name in self.nodes:
            status = {"conditions": [ready], "nodeInfo": {"kubeletVersion": "simulated", "architecture": "amd64"}}
            self.core.patch_node_status(name, {"status": status})
            spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}
            try:
                self.leases.patch_namespaced_lease(name, "kube-node-lease", {"spec": spec})
            except ApiException as exc:
                if exc.status != 404:
                    raise
                lease = {"metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec}
                self.leases.create_namespaced_lease("kube-node-lease", lease)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                log.warning("runner node heartbeat failed: %s", exc)

    # --- pods -------------------------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        version: str | None = None
        selector = "app.kubernetes.io/managed-by=kubeinfer"
        while not self._stopping.is_set():
            try:
                if version is None:
                    response = self.core.list_namespaced_pod(
                        self.namespace, label_selector=selector, _preload_content=False
                    )
                    listing = json.loads(response.data)
                    version = listing["metadata"]["resourceVersion"]
                    for pod in listing["items"]:
                        self._on_pod(pod)
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=selector,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    deserialize=False,
                )
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "DELETED":
                        self._on_pod(obj)
                    if self._stopping.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("runner pod watch failed: %s", exc)
                    self._stopping.wait(1)
                version = None
            except urllib3.exceptions.HTTPError as exc:
                log.warning("runner pod watch broke: %s", exc)
                self._stopping.wait(1)
                version = None

    def _on_pod(self, pod: dict[str, Any]) -> None:
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._seen:
                return
            self._seen.add(uid)
        self._pool.submit(self._run, pod)

    def _run(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        try:
            container = pod["spec"]["containers"][0]
            result_name, result = runner_result(container, self.models_root)
            owner = {e["name"]: e.get("value") for e in container.get("env") or []}.get(OWNER_ENV)
            self._write_result(result_name, result, json.loads(owner) if owner else None)
            self.core.patch_namespaced_pod_status(name, self.namespace, {"status": succeeded_status(pod)})
            with self._lock:
                self.completed += 1
        except (ApiException, urllib3.exceptions.HTTPError, ValueError, KeyError) as exc:
            log.warning("simulated runner pod %s failed: %s", name, exc)
            with self._lock:
                self.errors.append(f"{name}: {exc}")

    def _write_result(self, name: str, result: dict[str, Any], owner: dict[str, Any] | None) -> None:
        put_config_map(self.core, self.namespace, result_config_map(name, result, owner))
