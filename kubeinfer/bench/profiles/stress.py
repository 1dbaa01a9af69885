"""Stress: sustained generation for a set duration while host vitals are sampled; abort when too hot."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.bench.client import Interrupted, ServerError, StreamResult
from kubeinfer.bench.profiles.base import ProfileContext, guarded, mean, percent_change, rounded
from kubeinfer.bench.vitals import Vitals, VitalsSampler
from kubeinfer.resources.benchmark_matrix import ProfileResult, StressProfile

QUICK_SECONDS = 60.0
PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
#: A frequency this far below the highest seen while loaded counts as throttling when the kernel keeps no
#: throttle counter.
THROTTLE_FREQUENCY_RATIO = 0.85


@dataclass
class _Load:
    """What the workers share: finished requests, and why the run stopped early if it did."""

    started: float
    requests: list[tuple[float, StreamResult]] = field(default_factory=list)
    abort_reason: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, result: StreamResult) -> None:
        with self.lock:
            self.requests.append((time.monotonic() - self.started, result))


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Keep `concurrency` streams busy until the duration ends, the host gets too hot, or `stop` is set."""
    cfg = ctx.profiles.stress
    duration = min(cfg.duration_seconds, QUICK_SECONDS) if ctx.quick else cfg.duration_seconds
    halt = threading.Event()
    load = _Load(started=time.monotonic())
    max_tokens = max(8, min(cfg.max_tokens, ctx.max_context // 2))
    workers = [
        threading.Thread(target=_generate, args=(ctx, halt, load, max_tokens), daemon=True, name=f"stress-{i}")
        for i in range(cfg.concurrency)
    ]
    for worker in workers:
        worker.start()
    sampler = VitalsSampler(
        ctx.server_pid,
        min(cfg.sample_interval_seconds, duration),
        on_sample=lambda v: _check_temperature(v, cfg, load, halt),
    )
    sampler.start()
    interrupted = _wait(ctx.stop, halt, load.started + duration)
    for worker in workers:
        worker.join(timeout=10)
    sampler.stop()
    sampler.sample()
    metrics = summarize(load, sampler.samples, time.monotonic() - load.started)
    if interrupted:
        return ProfileResult(status="error", metrics=metrics, reason="interrupted")
    if load.error is not None:
        return ProfileResult(status="error", metrics=metrics, reason=load.error)
    return _judge(metrics, cfg)


def _wait(stop: threading.Event, halt: threading.Event, deadline: float) -> bool:
    """Block until the deadline, an abort or `stop`; True when `stop` ended it. Then halt the workers."""
    try:
        while not halt.is_set():
            if stop.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            halt.wait(min(0.1, remaining))
        return False
    finally:
        halt.set()


def _generate(ctx: ProfileContext, halt: threading.Event, load: _Load, max_tokens: int) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    with ctx.client(stop=halt) as client:
        while not halt.is_set():
            try:
                result = client.stream_chat(messages, max_tokens, cache_prompt=False, ignore_eos=True)
            except Interrupted as exc:
                if exc.partial is not None and exc.partial.chunk_times:
                    load.record(exc.partial)
                return
            except ServerError as exc:
                load.error = f"server stopped answering: {exc}"
                halt.set()
                return
            load.record(result)


def _check_temperature(vitals: Vitals, cfg: StressProfile, load: _Load, halt: threading.Event) -> None:
    temperature = vitals.temperature_celsius
    if temperature is not None and temperature >= cfg.abort_temperature_celsius:
        load.abort_reason = f"CPU temperature {temperature:.1f}°C reached {cfg.abort_temperature_celsius:g}°C"
        halt.set()


def summarize(load: _Load, samples: list[Vitals], elapsed: float) -> dict[str, Any]:
    with load.lock:
        requests = list(load.requests)
    temperatures = [s.temperature_celsius for s in samples if s.temperature_celsius is not None]
    frequencies = [s.cpu_mhz for s in samples if s.cpu_mhz is not None]
    swaps = [s.swap_bytes for s in samples if s.swap_bytes is not None]
    peaks = [s.peak_rss_bytes for s in samples if s.peak_rss_bytes is not None]
    tokens = sum(r.generated_tokens for _t, r in requests)
    return {
        "duration_seconds": round(elapsed, 3),
        "tokens_per_second": round(tokens / elapsed, 3) if tokens and elapsed > 0 else None,
        "tokens_per_second_drift_percent": rounded(rate_drift([r for _t, r in requests]), 2),
        "max_temperature_celsius": max(temperatures, default=None),
        "min_cpu_mhz": rounded(min(frequencies, default=None), 1),
        "max_cpu_mhz": rounded(max(frequencies, default=None), 1),
        "throttled": throttled(samples),
        "swap_used_bytes": max(swaps) if swaps else None,
        "peak_rss_bytes": max(peaks) if peaks else None,
        "aborted": load.abort_reason is not None,
        "abort_reason": load.abort_reason,
        "samples": [
            {
                "t": round(s.t, 3),
                "temperature_celsius": s.temperature_celsius,
                "cpu_mhz": rounded(s.cpu_mhz, 1),
                "rss_bytes": s.rss_bytes,
                "swap_bytes": s.swap_bytes,
            }
            for s in samples
        ],
    }


def rate_drift(results: list[StreamResult]) -> float | None:
    """Change of the decode rate from the first third of the requests to the last, in percent.

    Negative means generation got slower as the run went on.
    """
    rates = [r for result in results if (r := result.tokens_per_second) is not None]
    third = len(rates) // 3
    if third == 0:
        return None
    return percent_change(mean(rates[:third]), mean(rates[-third:]))


def throttled(samples: list[Vitals]) -> bool:
    """The kernel's throttle counter rose, or (without one) the CPU slowed well below its loaded peak.

    The first sample is left out of the frequency check: it is read before the load ramps up.
    """
    counts = [s.throttle_count for s in samples if s.throttle_count is not None]
    if len(counts) >= 2:
        return counts[-1] > counts[0]
    loaded = [s.cpu_mhz for s in samples[1:] if s.cpu_mhz is not None]
    return len(loaded) >= 2 and min(loaded) < THROTTLE_FREQUENCY_RATIO * max(loaded)


def _judge(metrics: dict[str, Any], cfg: StressProfile) -> ProfileResult:
    failures = []
    if metrics["aborted"]:
        failures.append(f"aborted: {metrics['abort_reason']}")
    temperature = metrics["max_temperature_celsius"]
    if temperature is not None and temperature > cfg.max_temperature_celsius:
        failures.append(f"CPU temperature {temperature:.1f}°C > {cfg.max_temperature_celsius:g}°C")
    if metrics["throttled"]:
        failures.append("the CPU was throttled")
    if metrics["swap_used_bytes"]:
        failures.append(f"the server swapped {metrics['swap_used_bytes']} bytes")
    if metrics["tokens_per_second"] is None:
        failures.append("no token was generated")
    status = "failed" if failures else "passed"
    return ProfileResult(status=status, metrics=metrics, reason="; ".join(failures) or None)
