"""The cumulative batch and vLLM series of one shard of a cluster BatchJob, as JSON the operator can add up.

A worker pod lives only as long as its shard, so nothing scrapes it; instead its counters and histogram
buckets travel in the shard's progress ConfigMap and in the merge result, and the long-lived operator exports
them (kubeinfer.metrics.batch_jobs, docs/metrics.md). The state is a pure function of the shard's durable
observation log (kubeinfer.batch.observation_log), so a replacement worker rebuilds exactly what its
predecessor had published, and more; adding states up never counts an observation twice.

`from_json` checks every entry against the family specs (kubeinfer.metrics.families): a state from a worker
whose buckets or labels differ is refused with a message naming the entry, never half-added.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.metrics.families import SHARD_FAMILIES, Family
from kubeinfer.metrics.observations import Contribution

VERSION = 1
#: A float sum depends on the order of its terms in its last bits (0.21100899999999997 against 0.211009), and a
#: worker that rebuilds a shard's state from its log adds them in log order, not in the order answers came. Each
#: histogram term and sum is kept to 9 decimals (a nanosecond): a decimal sum, the same in any order, so both
#: publish the same state.
SUM_DIGITS = 9
SeriesKey = tuple[str, tuple[str, ...]]


class BrokenShardMetrics(ValueError):
    """A shard's metrics JSON that does not fit the families this process knows."""


@dataclass
class Buckets:
    """One histogram series: observations per bucket (the last one is +Inf), and their sum."""

    counts: list[int]
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass
class ShardMetrics:
    counters: dict[SeriesKey, float] = field(default_factory=dict)
    histograms: dict[SeriesKey, Buckets] = field(default_factory=dict)

    def add(self, contribution: Contribution) -> None:
        family, key = contribution.family, (contribution.family.name, contribution.labels)
        if family.kind == "counter":
            self.counters[key] = self.counters.get(key, 0.0) + contribution.value
        elif family.kind == "histogram":
            series = self.histograms.setdefault(key, Buckets([0] * (len(family.buckets) + 1)))
            series.counts[bisect.bisect_left(family.buckets, contribution.value)] += 1
            series.total = round(series.total + round(contribution.value, SUM_DIGITS), SUM_DIGITS)
        else:
            raise ValueError(f"{family.name} is a {family.kind}; a shard accumulates counters and histograms only")

    def add_all(self, contributions: Iterable[Contribution]) -> None:
        for contribution in contributions:
            self.add(contribution)

    def merge(self, other: ShardMetrics) -> None:
        """Add another shard's state to this one."""
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + value
        for key, series in other.histograms.items():
            mine = self.histograms.setdefault(key, Buckets([0] * len(series.counts)))
            mine.counts = [a + b for a, b in zip(mine.counts, series.counts, strict=True)]
            mine.total = round(mine.total + series.total, SUM_DIGITS)

    def copy(self) -> ShardMetrics:
        return ShardMetrics(
            dict(self.counters), {k: Buckets(list(v.counts), v.total) for k, v in self.histograms.items()}
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "counters": [[name, list(labels), value] for (name, labels), value in sorted(self.counters.items())],
            "histograms": [
                [name, list(labels), series.counts, series.total]
                for (name, labels), series in sorted(self.histograms.items())
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> ShardMetrics:
        if not isinstance(data, dict):
            raise BrokenShardMetrics(f"metrics must be a JSON object, not {type(data).__name__}")
        if data.get("version") != VERSION:
            raise BrokenShardMetrics(f"metrics version {data.get('version')!r} is not {VERSION}")
        state = cls()
        for number, entry in enumerate(_entries(data, "counters")):
            family, labels = _series(entry, "counter", 3, f"counters[{number}]")
            state.counters[(family.name, labels)] = _amount(entry[2], f"counters[{number}] value")
        for number, entry in enumerate(_entries(data, "histograms")):
            where = f"histograms[{number}]"
            family, labels = _series(entry, "histogram", 4, where)
            counts = entry[2]
            if not isinstance(counts, list) or len(counts) != len(family.buckets) + 1:
                raise BrokenShardMetrics(f"{where}: {family.name} needs {len(family.buckets) + 1} bucket counts")
            state.histograms[(family.name, labels)] = Buckets(
                [int(_amount(c, f"{where} bucket count")) for c in counts], _amount(entry[3], f"{where} sum")
            )
        return state


def combined(states: Iterable[ShardMetrics]) -> ShardMetrics:
    total = ShardMetrics()
    for state in states:
        total.merge(state)
    return total


def _entries(data: dict[str, Any], key: str) -> list[Any]:
    entries = data.get(key, [])
    if not isinstance(entries, list):
        raise BrokenShardMetrics(f"metrics.{key} must be a list")
    return entries


def _series(entry: Any, kind: str, length: int, where: str) -> tuple[Family, tuple[str, ...]]:
    if not isinstance(entry, list) or len(entry) != length:
        raise BrokenShardMetrics(f"{where}: expected a list of {length} items")
    name, labels = entry[0], entry[1]
    family = SHARD_FAMILIES.get(name) if isinstance(name, str) else None
    if family is None or family.kind != kind:
        raise BrokenShardMetrics(f"{where}: {name!r} is not a {kind} a shard reports")
    if not isinstance(labels, list) or len(labels) != len(family.labels) or not all(isinstance(v, str) for v in labels):
        raise BrokenShardMetrics(
            f"{where}: {name} takes {len(family.labels)} label values ({', '.join(family.labels)})"
        )
    return family, tuple(labels)


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise BrokenShardMetrics(f"{where} must be a non-negative number, not {value!r}")
    return float(value)
