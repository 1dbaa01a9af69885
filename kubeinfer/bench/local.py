"""Run matrix cells on this machine: fetch the model, pre-flight, start llama-server, measure, stop."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

from kubeinfer.bench import page_cache, preflight
from kubeinfer.bench.cost import apply_cost, manifest_price
from kubeinfer.bench.load.records import jsonl_sink
from kubeinfer.bench.measure import measure_profiles
from kubeinfer.bench.outcome import judge_cell, record_sustainable
from kubeinfer.bench.planner import PlannedCell
from kubeinfer.bench.profiles.base import ProfileContext
from kubeinfer.bench.rules import GIB
from kubeinfer.bench.rules import preflight_memory as preflight_rule
from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig, ServerLoadError
from kubeinfer.models.cache import CachedModel
from kubeinfer.models.quantize import QuantizeError
from kubeinfer.models.sizing import SizingError
from kubeinfer.models.sources import ModelFetchError, ModelResolver
from kubeinfer.resources.benchmark_matrix import (
    BenchmarkMatrixSpec,
    CellResult,
    CellStatus,
    ProfileResult,
    Rule,
)

STRESS = "stress"


class LocalExecutor:
    """Executes cells as local llama-server processes; logs land in `<out_dir>/logs`."""

    def __init__(
        self,
        engine: EngineInstall,
        resolver: ModelResolver,
        out_dir: Path,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.engine = engine
        self.resolver = resolver
        self.out_dir = out_dir
        self.log = log
        self.stop = threading.Event()

    def target_memory_gb(self, spec: BenchmarkMatrixSpec) -> float:  # noqa: ARG002
        return psutil.virtual_memory().total / GIB

    def threads(self, spec: BenchmarkMatrixSpec) -> int:
        return spec.engine.threads or len(os.sched_getaffinity(0))

    def run_cell(self, cell: PlannedCell, spec: BenchmarkMatrixSpec, limit_gb: float) -> CellResult:
        result = cell.pending_result()
        result.threads = self.threads(spec)
        try:
            model = self.resolver.resolve(cell.model.name, cell.quantization, cell.model.files)
        except (ModelFetchError, QuantizeError, OSError, LookupError, ValueError) as exc:
            return self._ended(result, CellStatus.error, None, f"model unavailable: {exc}")
        result.model_path = str(model.path)
        result.model_size_gb = round(model.size_bytes / GIB, 4)
        try:
            plan = preflight.plan_server(model.path, spec)
        except SizingError as exc:
            return self._ended(result, CellStatus.error, None, f"cannot size model: {exc}")
        result.estimated_memory_gb = round(plan.estimated_bytes / GIB, 4)
        if skip := preflight_rule(plan.estimated_bytes / GIB, limit_gb):
            return self._ended(result, CellStatus.skipped, skip.rule, skip.reason)
        profiles = [p for p in spec.profiles.enabled() if p != STRESS]
        if failure := self._cold_load(result, model, spec, plan):
            return self._ended(result, CellStatus.failed, Rule.load_failure, failure)
        return self._serve_and_measure(result, model, spec, plan, profiles)

    def run_stress(self, cell: PlannedCell, spec: BenchmarkMatrixSpec) -> ProfileResult:
        result = cell.pending_result()
        try:
            model = self.resolver.resolve(cell.model.name, cell.quantization, cell.model.files)
            plan = preflight.plan_server(model.path, spec)
        except (ModelFetchError, QuantizeError, SizingError, OSError, LookupError, ValueError) as exc:
            return ProfileResult(status="error", reason=f"model unavailable: {exc}")
        measured = self._serve_and_measure(result, model, spec, plan, [STRESS], log_suffix="-stress", rate=False)
        return measured.profiles.get(STRESS) or ProfileResult(status="error", reason=measured.reason)

    def _serve_and_measure(
        self,
        result: CellResult,
        model: CachedModel,
        spec: BenchmarkMatrixSpec,
        plan: preflight.ServerPlan,
        profiles: list[str],
        log_suffix: str = "",
        rate: bool = True,
    ) -> CellResult:
        log_path = self._log_path(model, log_suffix)
        result.server_log = str(log_path)
        server = LlamaServer(self.engine.llama_server, self._server_config(model, spec, plan), log_path)
        try:
            server.start(timeout_seconds=spec.limits.max_load_time_seconds)
        except ServerLoadError as exc:
            result.load_seconds = None
            return self._ended(result, CellStatus.failed, Rule.load_failure, _load_failure(exc))
        with server:
            result.load_seconds = round(server.load_seconds or 0.0, 3)
            context = ProfileContext(
                base_url=server.base_url,
                model=model.model,
                profiles=spec.profiles,
                quick=spec.mode == "quick",
                server_pid=server.pid,
                max_context=plan.ctx_per_slot,
                stop=self.stop,
                log=self.log,
                records=jsonl_sink(self.out_dir / "requests", f"{model.model}_{model.quantization}"),
            )
            result.profiles.update(measure_profiles(context, profiles, rate, server.alive, lambda: server.log_tail(5)))
            record_sustainable(result)
            apply_cost(result, manifest_price(spec.placement))
            if server.sampler is not None:
                server.sampler.sample()
                result.peak_memory_gb = round(server.sampler.peak_rss_bytes / GIB, 4)
                swap = server.sampler.max_swap_bytes
                if swap and not spec.limits.allow_swap:
                    return self._ended(
                        result,
                        CellStatus.failed,
                        None,
                        f"llama-server swapped {swap / GIB:.2f} GB and limits.allowSwap is false",
                    )
        status, rule, reason = judge_cell(result.profiles)
        return self._ended(result, status, rule, reason)

    def _cold_load(
        self, result: CellResult, model: CachedModel, spec: BenchmarkMatrixSpec, plan: preflight.ServerPlan
    ) -> str | None:
        """Evict the model file from the page cache, start a server on it and stop it once healthy.

        That start's load time is `cold_load_seconds`; the measuring server started next finds the file
        cached, and its load time is `load_seconds` (warm). Returns why the load failed, else None.
        """
        if why_not_cold := page_cache.evict_for_cold_load(model.path):
            self.log(f"{result.key}: {why_not_cold}")
        log_path = self._log_path(model, "-cold")
        with LlamaServer(self.engine.llama_server, self._server_config(model, spec, plan), log_path) as server:
            try:
                server.start(timeout_seconds=spec.limits.max_load_time_seconds)
            except ServerLoadError as exc:
                result.server_log = str(log_path)
                return _load_failure(exc)
            result.cold_load_seconds = round(server.load_seconds or 0.0, 3)
        return None

    def _log_path(self, model: CachedModel, suffix: str) -> Path:
        return self.out_dir / "logs" / f"{model.model}_{model.quantization}{suffix}.log"

    def _server_config(self, model: CachedModel, spec: BenchmarkMatrixSpec, plan: preflight.ServerPlan) -> ServerConfig:
        return ServerConfig(
            model_path=model.path,
            ctx_size=plan.ctx_size,
            parallel=spec.engine.parallel,
            threads=self.threads(spec),
            gpu_layers=spec.engine.gpu_layers,
            alias=model.model,
            extra_args=spec.engine.extra_args,
        )

    @staticmethod
    def _ended(result: CellResult, status: CellStatus, rule: Rule | None, reason: str | None) -> CellResult:
        result.status, result.rule, result.reason = status, rule, reason
        return result


def _load_failure(exc: ServerLoadError) -> str:
    return f"model load {'timed out' if exc.timed_out else 'failed'}: {exc}"
