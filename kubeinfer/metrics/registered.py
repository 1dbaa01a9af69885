"""prometheus-client objects built from the family specs (kubeinfer.metrics.families), and contributions applied.

Only processes that serve their own registry import this (through kubeinfer.metrics.batch and .vllm); the
operator exports the same families from shard states instead and must not register them a second time.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from kubeinfer.metrics.families import Family
from kubeinfer.metrics.observations import Contribution

_built: dict[str, Counter | Histogram] = {}


def counter(family: Family) -> Counter:
    built = _built[family.name] = Counter(family.name, family.documentation, list(family.labels))
    return built


def histogram(family: Family) -> Histogram:
    built = Histogram(family.name, family.documentation, list(family.labels), buckets=family.buckets)
    _built[family.name] = built
    return built


def gauge(family: Family) -> Gauge:
    return Gauge(family.name, family.documentation, list(family.labels))


def apply(contributions: Iterable[Contribution]) -> None:
    """Add each contribution to this process's registered counter or histogram of its family."""
    for contribution in contributions:
        metric = _built[contribution.family.name]
        child = metric.labels(*contribution.labels) if contribution.labels else metric
        if isinstance(child, Counter):
            child.inc(contribution.value)
        else:
            child.observe(contribution.value)
