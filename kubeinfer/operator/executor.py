"""Run matrix cells in a cluster: a prepare Job, a model server Pod, a measure Job, then tear down.

This is the in-cluster counterpart of `kubeinfer.bench.local.LocalExecutor`; the same MatrixRunner drives
both. Every child has a deterministic name, so after an operator restart a cell in flight is picked up
where it was: a finished Job's result is read, a running one is awaited, nothing is created twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from kubeinfer.bench.cost import PriceError, apply_cost
from kubeinfer.bench.outcome import judge_cell, record_sustainable
from kubeinfer.bench.planner import PlannedCell
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.bench.rules import GIB
from kubeinfer.bench.rules import preflight_memory as preflight_rule
from kubeinfer.kube.objects import create_or_adopt, read_json_config_map
from kubeinfer.kube.pod_start import StartReporter, as_json, check_job, check_pod
from kubeinfer.kube.poll import PollInterval
from kubeinfer.operator.builders.benchmark_matrix import (
    build_runner_job,
    build_server_pod,
    measures_memory,
    memory_url,
)
from kubeinfer.operator.builders.common import SERVER_PORT
from kubeinfer.operator.pricing import cell_price
from kubeinfer.resources.benchmark_matrix import (
    BenchmarkMatrix,
    BenchmarkMatrixSpec,
    CellResult,
    CellStatus,
    ProfileResult,
    Rule,
)
from kubeinfer.resources.names import child_name, result_name
from kubeinfer.settings import OperatorSettings

STRESS = "stress"


class CellStepError(RuntimeError):
    """A runner Job failed or timed out; the message says which and why."""


class ClusterExecutor:
    def __init__(
        self,
        api: client.ApiClient,
        matrix_body: dict[str, Any],
        settings: OperatorSettings,
        emit: Callable[[str, str], None],
        start: StartReporter,
        price_problem: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.body = matrix_body
        self.matrix = BenchmarkMatrix.model_validate(_resource_fields(matrix_body))
        self.namespace = matrix_body["metadata"]["namespace"]
        self.settings = settings
        self.emit = emit
        #: Says on the matrix why a Job's or server's pods cannot start (a missing ServiceAccount, ...).
        self.start = start
        #: Says on the matrix why a cell has no cost (a malformed node price); the cell runs on.
        self.price_problem = price_problem
        self.stop = threading.Event()

    # --- CellExecutor ----------------------------------------------------------------------------

    def target_memory_gb(self, spec: BenchmarkMatrixSpec) -> float:
        """The smallest allocatable memory among the pool's nodes."""
        pool = self.settings.pool_aliases.get(spec.placement.pool, spec.placement.pool)
        return _POOL_MEMORY.get(self.core, f"{self.settings.pool_label}={pool}")

    def run_cell(self, cell: PlannedCell, spec: BenchmarkMatrixSpec, limit_gb: float) -> CellResult:
        result = cell.pending_result()
        result.threads = spec.engine.threads
        prepared = self._step(cell, "prepare", [])
        if "error" in prepared:
            return _ended(result, CellStatus.error, None, prepared["error"])
        result.model_path = prepared["model_path"]
        result.model_size_gb = round(prepared["size_bytes"] / GIB, 4)
        result.estimated_memory_gb = round(prepared["estimated_bytes"] / GIB, 4)
        if skip := preflight_rule(prepared["estimated_bytes"] / GIB, limit_gb):
            return _ended(result, CellStatus.skipped, skip.rule, skip.reason)
        profiles = [p for p in spec.profiles.enabled() if p != STRESS]
        return self._serve_and_measure(result, cell, prepared, profiles, rate=True)

    def run_stress(self, cell: PlannedCell, spec: BenchmarkMatrixSpec) -> ProfileResult:  # noqa: ARG002
        prepared = self._step(cell, "prepare", [])
        if "error" in prepared:
            return ProfileResult(status="error", reason=prepared["error"])
        measured = self._serve_and_measure(cell.pending_result(), cell, prepared, [STRESS], rate=False, tag="stress")
        return measured.profiles.get(STRESS) or ProfileResult(status="error", reason=measured.reason)

    # --- steps ------------------------------------------------------------------------------------

    def _serve_and_measure(
        self,
        result: CellResult,
        cell: PlannedCell,
        prepared: dict[str, Any],
        profiles: list[str],
        rate: bool,
        tag: str = "measure",
    ) -> CellResult:
        spec = self.matrix.spec
        pod = build_server_pod(
            self.body,
            self.matrix,
            cell.key,
            prepared["model_path"],
            prepared["ctx_size"],
            prepared["estimated_bytes"],
            self.settings,
            component="server" if tag == "measure" else f"{tag}-server",
        )
        try:
            started = time.monotonic()
            # A supervised llama-server loads twice before it is Ready: cold on a side port, then for real.
            loads = 2 if measures_memory(self.matrix) else 1
            ip, node = self._serve(pod, loads * spec.limits.max_load_time_seconds)
            result.load_seconds = round(time.monotonic() - started, 3)
            self.emit("ServerReady", f"{cell.key}: model server {pod['metadata']['name']} ready at {ip}")
            args = [
                "--server",
                f"http://{ip}:{SERVER_PORT}",
                "--profiles",
                ",".join(profiles),
                "--ctx-per-slot",
                str(prepared["ctx_per_slot"]),
            ]
            if url := memory_url(self.matrix, ip):
                args += ["--memory-url", url]
            measured = self._step(cell, "measure", args, component=tag)
        except ServerLoadFailure as exc:
            self._delete_pod(pod["metadata"]["name"])
            return _ended(result, CellStatus.failed, Rule.load_failure, str(exc))
        except CellStepError as exc:
            self._delete_pod(pod["metadata"]["name"])
            return _ended(result, CellStatus.error, None, str(exc))
        # On KeyboardInterrupt (operator stopping) the server stays: the next operator re-adopts it.
        self._delete_pod(pod["metadata"]["name"])
        for name, data in measured["profiles"].items():
            outcome = ProfileResult.model_validate(data)
            result.profiles[name] = rate_profile(name, outcome, spec.profiles) if rate else outcome
        record_sustainable(result)
        self._price(result, node)
        after = (measured.get("memory") or {}).get("after")
        if after is None and measured.get("memory_error"):
            self.emit("MemoryNotMeasured", f"{cell.key}: {measured['memory_error']}"[:1000])
        if measured.get("records_error"):
            self.emit("RequestsNotKept", f"{cell.key}: {measured['records_error']}"[:1000])
        if after:
            result.peak_memory_gb = round(after["peak_rss_bytes"] / GIB, 4)
            # The supervisor's own timing, from starting llama-server to its first healthy answer, as on one
            # machine; the Pod's creation-to-Ready time stays where it did not time them (an older image).
            result.cold_load_seconds = after.get("cold_load_seconds")
            result.load_seconds = after.get("load_seconds") or result.load_seconds
            swap = after["max_swap_bytes"]
            if swap and not spec.limits.allow_swap:
                why = f"llama-server swapped {swap / GIB:.2f} GB and limits.allowSwap is false"
                return _ended(result, CellStatus.failed, None, why)
        status, rule, reason = judge_cell(result.profiles)
        return _ended(result, status, rule, reason)

    def _price(self, result: CellResult, node: str | None) -> None:
        try:
            apply_cost(result, cell_price(self.core, self.matrix.spec, node))
        except PriceError as exc:
            self.price_problem(f"{result.key}: no cost: {exc}")

    def _serve(self, pod: dict[str, Any], timeout: float) -> tuple[str, str | None]:
        """Create (or find) the server pod and wait until it is Ready; returns its IP and node."""
        name = pod["metadata"]["name"]
        create_or_adopt(lambda: self.core.create_namespaced_pod(self.namespace, pod))
        deadline = time.monotonic() + timeout
        while True:
            self._check_stop()
            current = self.core.read_namespaced_pod(name, self.namespace)
            if current.metadata.deletion_timestamp is not None:
                raise ServerLoadFailure(f"model server {name} is being deleted")
            if current.status.phase in ("Failed", "Succeeded"):
                raise ServerLoadFailure(f"model server exited while loading: {_termination(current)}")
            if _ready(current) and current.status.pod_ip:
                self.start.report(True)
                return str(current.status.pod_ip), current.spec.node_name
            self.start.check(partial(check_pod, as_json(current)))
            if time.monotonic() > deadline:
                why = _pending_reason(current)
                raise ServerLoadFailure(f"model server not ready within {timeout:.0f}s{why}")
            time.sleep(self.settings.poll_seconds)

    def _step(self, cell: PlannedCell, step: str, args: list[str], component: str | None = None) -> dict[str, Any]:
        """Run (or find) the cell's Job for `step` and return the JSON it wrote."""
        job = build_runner_job(self.body, self.matrix, cell.key, step, args, self.settings, component)
        name = job["metadata"]["name"]
        if (found := read_json_config_map(self.core, self.namespace, result_name(name))) is not None:
            return found
        create_or_adopt(lambda: self.batch.create_namespaced_job(self.namespace, job))
        deadline = time.monotonic() + self.settings.job_timeout_seconds
        wait = PollInterval(self.settings.poll_seconds, self.settings.max_poll_seconds)
        while time.monotonic() < deadline:
            self._check_stop()
            job_now = self.batch.read_namespaced_job_status(name, self.namespace)
            status = job_now.status
            if status.succeeded:
                self.start.report(True)
                found = read_json_config_map(self.core, self.namespace, result_name(name))
                if found is None:
                    raise CellStepError(f"{step} Job {name} succeeded but wrote no result")
                return found
            failed = [c for c in (status.conditions or []) if c.type == "Failed" and c.status == "True"]
            if failed:
                raise CellStepError(f"{step} Job {name} failed: {failed[0].reason}: {failed[0].message}")
            self.start.check(partial(check_job, self.core, as_json(job_now)))
            time.sleep(wait())
        raise CellStepError(f"{step} Job {name} did not finish within {self.settings.job_timeout_seconds:.0f}s")

    def _delete_pod(self, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=10)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt


class _PoolMemory:
    """Smallest allocatable memory per node pool, shared by every matrix for `ttl` seconds.

    Measured with 200 matrices on 1,000 nodes: each matrix listing (and deserialising) its pool's nodes on
    its own cost the operator about 7 MiB per running matrix and one large list call each.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, float]] = {}

    def get(self, core: client.CoreV1Api, selector: str) -> float:
        with self._lock:
            found = self._known.get(selector)
            if found is not None and found[0] > time.monotonic():
                return found[1]
            response = core.list_node(label_selector=selector, _preload_content=False)
            nodes = json.loads(response.data)["items"]
            sizes = [
                float(parse_quantity(n["status"]["allocatable"]["memory"]))
                for n in nodes
                if "memory" in (n.get("status", {}).get("allocatable") or {})
            ]
            value = min(sizes) / GIB if sizes else 0.0
            self._known[selector] = (time.monotonic() + self.ttl, value)
            return value


_POOL_MEMORY = _PoolMemory()


class ServerLoadFailure(RuntimeError):
    """The model server exited or was not Ready in time: rule 2, load failure."""


def server_pod_name(matrix: str, cell_key: str) -> str:
    return child_name(matrix, cell_key, "server")


def _ended(result: CellResult, status: CellStatus, rule: Rule | None, reason: str | None) -> CellResult:
    result.status, result.rule, result.reason = status, rule, reason
    return result


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _termination(pod: client.V1Pod) -> str:
    for status in pod.status.container_statuses or []:
        terminated = status.state.terminated if status.state else None
        if terminated:
            return f"exit code {terminated.exit_code} ({terminated.reason}) {terminated.message or ''}".strip()
    return pod.status.reason or pod.status.message or "unknown"


def _pending_reason(pod: client.V1Pod) -> str:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status != "True":
            return f" (unschedulable: {condition.message})"
    return ""


def _resource_fields(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
        "spec": body["spec"],
    }
