"""SLO goodput: a request is good when it meets every latency limit given; goodput is good requests per
second of the level. A level meets the SLO when the SLO's percentile of each latency is within its limit.

Per request the inter-token latency is its mean gap (time per output token after the first); per level
it is the percentile of every gap pooled, the same figure as `itl_p95_seconds`.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubeinfer.bench.load.driver import RequestRecord
from kubeinfer.bench.load.stats import percentile, span_seconds
from kubeinfer.resources.benchmark_matrix import Slo


def is_good(record: RequestRecord, slo: Slo) -> bool:
    if not record.ok:
        return False
    checks = (
        (slo.ttft_seconds, record.ttft_seconds),
        (slo.itl_seconds, record.mean_itl_seconds),
        (slo.e2e_seconds, record.e2e_seconds),
    )
    return all(value is not None and value <= limit for limit, value in checks if limit is not None)


def goodput_rps(records: Sequence[RequestRecord], slo: Slo) -> float | None:
    span = span_seconds(records)
    if span <= 0:
        return None
    return round(sum(1 for r in records if is_good(r, slo)) / span, 4)


def slo_misses(records: Sequence[RequestRecord], slo: Slo) -> list[str]:
    """What the level misses at the SLO's percentile, in words; empty when it meets the SLO.

    A failed request counts as infinitely slow, so errors push the percentile past any limit."""
    pct = slo.percentile
    failed = [float("inf")] * sum(1 for r in records if not r.ok)
    ok = [r for r in records if r.ok]
    observed = {
        "ttft": percentile([r.ttft_seconds for r in ok if r.ttft_seconds is not None] + failed, pct),
        "itl": percentile([gap for r in ok for gap in r.itl_seconds] + failed, pct),
        "e2e": percentile([r.e2e_seconds for r in ok if r.e2e_seconds is not None] + failed, pct),
    }
    limits = {"ttft": slo.ttft_seconds, "itl": slo.itl_seconds, "e2e": slo.e2e_seconds}
    misses = []
    for name, limit in limits.items():
        value = observed[name]
        if limit is None:
            continue
        if value is None:
            misses.append(f"{name} p{pct:g} not measured")
        elif value > limit:
            misses.append(f"{name} p{pct:g} {value:.3f}s > {limit:g}s")
    return misses
