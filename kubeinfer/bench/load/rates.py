"""95% intervals of a level's rates: answered requests/s, output and input tokens/s, and goodput.

Each rate is a count over the level's span (first send to last answer): one value per level, no repeats to
average. Its interval comes from the level's requests, by what set the span in the run:

* **closed loop** (a concurrency): the driver keeps the slots busy, so the span is the requests' summed time
  over the mean number in flight, L = sum(e2e) / span (Little's law), and the rate is the ratio
  L * mean(count) / mean(e2e). Its interval is the usual one of a ratio of means: Student's t over the
  requests' linearized values R + (L * count_i - R * e2e_i) / mean(e2e), whose mean is the rate R itself
  (intervals.mean_interval). It holds L fixed: how well the slots were kept full (the ramp at the start, the
  tail at the end) is ignored. In simulated closed loops (4 to 32 requests, 1 or 4 slots, times spread
  5-30%) it held the mean over repeats in 90-95% of levels.
* **open loop** (a rate): the send times are the seeded arrival schedule, the same in every run of the
  manifest, so they stay; each send gets a request drawn from the level's (time, count and outcome
  together) and span = last (send + e2e) - first send, 2,000 times with a fixed seed, and the interval is
  the bootstrap's 2.5th to 97.5th percentile (intervals.bootstrap_rows_interval). Ignored: queueing (a slow
  request does not delay the next one in a draw). Simulated (16 or 32 requests, 1 or 4 slots): 92-100%,
  83% with a queue (the slots 75% busy).

Both treat requests as independent. What moves every request of a run alike, such as another job starting
on the host between two runs, is not in one run's requests, so two runs can differ by more than their
intervals allow. Each interval is widened where needed to hold the level's own value and starts at 0 at the
lowest. Fewer than two requests give none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kubeinfer.bench.intervals import bootstrap_rows_interval, interval_key, mean_interval
from kubeinfer.bench.load.driver import RequestRecord
from kubeinfer.bench.load.goodput import is_good
from kubeinfer.bench.load.stats import span_seconds
from kubeinfer.resources.benchmark_matrix import Slo

#: What one request adds to a rate's count.
Count = Callable[[RequestRecord], float]
#: (seconds the request took, what it counts): a request as a resample sees it.
Row = tuple[float, float]


def _answered(record: RequestRecord) -> float:
    return 1.0 if record.ok else 0.0


def _output_tokens(record: RequestRecord) -> float:
    return float(record.output_tokens or 0) if record.ok else 0.0


def _input_tokens(record: RequestRecord) -> float:
    return float(record.input_tokens or 0) if record.ok else 0.0


#: The level's rates (as stats.summarize computes them) and the digits they are rounded to.
RATES: dict[str, tuple[Count, int]] = {
    "achieved_rps": (_answered, 4),
    "output_tokens_per_second": (_output_tokens, 3),
    "input_tokens_per_second": (_input_tokens, 3),
}


def closed_loop_interval(rows: Sequence[Row], span: float, digits: int) -> list[float] | None:
    """Student's t interval of L * mean(count) / mean(time), L = sum(time) / span, over the rows' linearized values."""
    mean_time = sum(seconds for seconds, _ in rows) / len(rows)
    if mean_time <= 0:
        return None
    occupancy = mean_time * len(rows) / span
    rate = sum(count for _, count in rows) / span
    return mean_interval([rate + (occupancy * count - rate * seconds) / mean_time for seconds, count in rows], digits)


def open_loop_interval(rows: Sequence[Row], sends: Sequence[float], digits: int) -> list[float] | None:
    """Bootstrap interval of sum(count) / span with the requests going out at the fixed `sends` (ascending)."""

    def rate(drawn: list[Row]) -> float | None:
        span = max(sent + seconds for sent, (seconds, _) in zip(sends, drawn, strict=True)) - sends[0]
        return sum(count for _, count in drawn) / span if span > 0 else None

    return bootstrap_rows_interval(rows, rate, digits)


def rate_interval(
    records: Sequence[RequestRecord], count: Count, *, open_loop: bool, digits: int
) -> list[float] | None:
    """The 95% interval of sum(count) / span over `records`, holding the level's own value; None without one."""
    span = span_seconds(records)
    if len(records) < 2 or span <= 0:
        return None
    ordered = sorted(records, key=lambda r: r.sent_seconds)
    rows = [(r.e2e_seconds or 0.0, count(r)) for r in ordered]
    if open_loop:
        interval = open_loop_interval(rows, [r.sent_seconds for r in ordered], digits)
    else:
        interval = closed_loop_interval(rows, span, digits)
    if interval is None:
        return None
    value = round(sum(c for _, c in rows) / span, digits)
    return [max(0.0, min(interval[0], value)), max(interval[1], value)]


def rate_intervals(
    records: Sequence[RequestRecord], *, open_loop: bool, slo: Slo | None = None
) -> dict[str, list[float]]:
    """`{rate_interval: [low, high]}` for the level's rates (and `goodput_rps` with an SLO)."""
    rates = dict(RATES)
    if slo is not None:
        rates["goodput_rps"] = (lambda r: 1.0 if is_good(r, slo) else 0.0, 4)
    found = {
        interval_key(name): rate_interval(records, count, open_loop=open_loop, digits=digits)
        for name, (count, digits) in rates.items()
    }
    return {key: value for key, value in found.items() if value is not None}
