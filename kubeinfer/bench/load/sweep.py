"""Sweeps: load levels run lowest first until the server saturates, and which level was the best it sustained.

Saturation, judged after each level against the one before:
- throughput: output tokens/s rose by less than `saturationGainPercent` (more load, no more work done);
- falling behind (open loop): requests were answered at under `BEHIND_RATIO` of the rate they arrived at;
- queue growing (open loop): the last third of the level's requests waited for a slot `QUEUE_GROWTH` times
  as long as the first third, and longer than a whole early request took.
The sweep stops at the first saturated level and records why. A level is *sustainable* when it is not
saturated, answered every request and, where an SLO is given, meets it; the best sustainable level (most
output tokens/s) gives the cell's `max_sustainable_*` figures, and their 95% intervals are that level's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.bench.load.driver import Level, LevelRun, RequestRecord
from kubeinfer.bench.load.goodput import goodput_rps, slo_misses
from kubeinfer.bench.load.rates import rate_intervals
from kubeinfer.bench.load.stats import summarize
from kubeinfer.resources.benchmark_matrix import Slo, Sweep

BEHIND_RATIO = 0.8
QUEUE_GROWTH = 2.0


@dataclass
class LevelResult:
    run: LevelRun
    summary: dict[str, Any]
    saturation: str | None = None
    slo_misses: list[str] = field(default_factory=list)
    slo_given: bool = False

    @property
    def level(self) -> Level:
        return self.run.level

    @property
    def sustainable(self) -> bool:
        return self.saturation is None and not self.slo_misses and not self.summary["errors"] and bool(self.run.records)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.level.kind, "value": self.level.value, "label": self.level.label}
        if self.level.kind == "rate":
            data["offered_rps"] = self.level.value
        data |= self.summary
        if self.slo_given:
            data["meets_slo"] = not self.slo_misses
            data["slo_misses"] = self.slo_misses
        data["saturation"] = self.saturation
        data["sustainable"] = self.sustainable
        return data


def sweep_levels(sweep: Sweep) -> list[list[Level]]:
    """The series to run: concurrency levels, then rate levels, each lowest first."""
    series = [
        [Level("concurrency", float(c)) for c in sweep.concurrency],
        [Level("rate", r) for r in sweep.rates],
    ]
    return [levels for levels in series if levels]


def measure_level(run: LevelRun, slo: Slo | None) -> LevelResult:
    """The level's figures, its rates with their 95% intervals (load/rates.py), and what it missed of the SLO."""
    summary = summarize(run.records)
    misses: list[str] = []
    if slo is not None:
        summary["goodput_rps"] = goodput_rps(run.records, slo)
        misses = slo_misses(run.records, slo)
    summary |= rate_intervals(run.records, open_loop=run.level.kind == "rate", slo=slo)
    return LevelResult(run, summary, slo_misses=misses, slo_given=slo is not None)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def queue_growth(records: Sequence[RequestRecord]) -> str | None:
    """Why the queue grew through an open-loop level, or None: late requests waited much longer than early ones."""
    ok = [r for r in records if r.ok and r.queue_wait_seconds is not None]
    third = len(ok) // 3
    if third < 2:
        return None
    early = _median([r.queue_wait_seconds for r in ok[:third] if r.queue_wait_seconds is not None]) or 0.0
    late = _median([r.queue_wait_seconds for r in ok[-third:] if r.queue_wait_seconds is not None]) or 0.0
    service = _median([r.e2e_seconds for r in ok[:third] if r.e2e_seconds is not None]) or 0.0
    if late > QUEUE_GROWTH * early and late - early > service:
        return f"queue growing: the last requests waited {late:.2f}s for a slot, the first {early:.2f}s"
    return None


def falling_behind(run: LevelRun) -> str | None:
    """Why an open-loop level fell behind its arrivals, or None."""
    finished = sorted(r.finished_seconds for r in run.records if r.ok)
    if len(run.arrivals) < 3 or len(finished) < 3:
        return None
    arrived = (len(run.arrivals) - 1) / (run.arrivals[-1] - run.arrivals[0] or 1e-9)
    served = (len(finished) - 1) / (finished[-1] - finished[0] or 1e-9)
    if served < BEHIND_RATIO * arrived:
        return f"falling behind: requests answered at {served:.2f}/s, arriving at {arrived:.2f}/s"
    return None


def saturation(previous: LevelResult | None, current: LevelResult, gain_percent: float) -> str | None:
    """Why `current` is saturated, or None."""
    if current.level.kind == "rate":
        if why := falling_behind(current.run) or queue_growth(current.run.records):
            return why
    if previous is None:
        return None
    before = previous.summary.get("output_tokens_per_second")
    after = current.summary.get("output_tokens_per_second")
    if before and after is not None:
        gain = (after - before) / before * 100
        if gain < gain_percent:
            return (
                f"throughput: output {after:.1f} tokens/s at {current.level.label}, {gain:+.1f}% from "
                f"{before:.1f} at {previous.level.label} (less than {gain_percent:g}%)"
            )
    return None


@dataclass
class SweepResult:
    levels: list[LevelResult]
    #: Per series: the level it stopped at (None: every level ran) and why.
    stops: list[dict[str, Any]]

    def best(self) -> LevelResult | None:
        """The sustainable level with the most output tokens/s."""
        fit = [r for r in self.levels if r.sustainable]
        return max(fit, key=lambda r: r.summary.get("output_tokens_per_second") or 0.0, default=None)

    @property
    def reason(self) -> str:
        return "; ".join(f"{s['kind']}: {s['reason']}" for s in self.stops)


def run_sweep(
    series: list[list[Level]],
    run_level: Callable[[Level], LevelRun],
    slo: Slo | None,
    gain_percent: float,
    log: Callable[[str], None] = lambda _m: None,
) -> SweepResult:
    """Each series lowest first, stopping it at its first saturated level."""
    results: list[LevelResult] = []
    stops: list[dict[str, Any]] = []
    for levels in series:
        previous: LevelResult | None = None
        stop: dict[str, Any] = {
            "kind": levels[0].kind,
            "saturated": False,
            "level": None,
            "reason": f"every level ran without saturating (up to {levels[-1].label})",
        }
        for level in levels:
            current = measure_level(run_level(level), slo)
            current.saturation = saturation(previous, current, gain_percent)
            results.append(current)
            s = current.summary
            log(
                f"{level.label}: {s['achieved_rps']} req/s, {s['output_tokens_per_second']} output tokens/s, "
                f"ttft p95 {s['ttft_p95_seconds']}s"
                + (f" - saturated, {current.saturation}" if current.saturation else "")
            )
            if current.saturation:
                stop = {"kind": level.kind, "saturated": True, "level": level.label, "reason": current.saturation}
                break
            previous = current
        stops.append(stop)
    return SweepResult(results, stops)
