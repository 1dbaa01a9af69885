"""The operator's export of its BatchJobs' batch and vLLM metrics, from the shard states its workers report.

Worker pods live only as long as their shard, so a scrape would miss most of them (docs/metrics.md says why
neither a PodMonitor nor a Pushgateway fits). Each worker puts its shard's cumulative state into its progress
ConfigMap, and the merge puts the batch's final state into its result (kubeinfer.metrics.shard_state); the
operator reads them on every reconcile pass and this collector serves them under the gateway's names, with a
`batchjob` label (`namespace/name`) added.

Every value exported is a pure function of those durable reports, never a count this process kept: an
operator restarted mid-batch exports the same values again (no counter reset, nothing counted twice), and a
retried shard reports a state rebuilt from its observation log, which only grows. A shard whose report cannot
be read keeps its last good state; when there is none (right after a restart), the batch's cumulative series
are withheld until there is, since a sum that drops would read as a counter reset.

Series of a batch stay `LINGER_SECONDS` after it ends, so Prometheus scrapes the final values, and then go:
the label set is bounded by the BatchJobs running, not by all that ever ran.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubeinfer.metrics import families as f
from kubeinfer.metrics.families import SHARD_FAMILIES, Family
from kubeinfer.metrics.shard_state import BrokenShardMetrics, Buckets, ShardMetrics, combined

#: The label every series of a BatchJob carries: `namespace/name`, like `matrix` on the operator's cell gauges.
BATCHJOB_LABEL = "batchjob"
#: How long a finished batch's series stay: several scrape intervals, so its final values are scraped.
LINGER_SECONDS = 300.0
#: Series every running batch exports from its start, so rates and error ratios answer before the first failure.
ZERO_SERIES: tuple[tuple[Family, tuple[str, ...]], ...] = (
    *((f.BATCH_REQUESTS, (status,)) for status in f.REQUEST_STATUSES),
    *((f.BATCH_TOKENS, (kind,)) for kind in f.TOKEN_KINDS),
    (f.BATCH_RETRIES, ()),
    (f.BATCH_CACHED_PROMPT_TOKENS, ()),
    (f.BATCH_REQUEST_DURATION, ()),
)


def shard_metrics_of(report: Mapping[str, Any]) -> ShardMetrics:
    """The `metrics` of a shard's progress or a merge result; BrokenShardMetrics says why it is unusable."""
    if "metrics" not in report:
        raise BrokenShardMetrics("it has no metrics (a worker image older than the operator?)")
    return ShardMetrics.from_json(report["metrics"])


@dataclass
class _Batch:
    model: str
    shards: dict[int, ShardMetrics] = field(default_factory=dict)
    #: Shards that reported but whose state this process never could read.
    unreadable: set[int] = field(default_factory=set)
    final: ShardMetrics | None = None
    running: bool = True
    progress: float = 0.0
    in_flight: int = 0
    finished_at: float | None = None

    def state(self) -> ShardMetrics | None:
        if self.final is not None:
            return self.final
        return None if self.unreadable else combined(self.shards.values())


class BatchJobMetrics(Collector):
    """The BatchJobs this operator drives, by `namespace/name`; thread-safe (one daemon thread per batch)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, linger_seconds: float = LINGER_SECONDS) -> None:
        self._clock = clock
        self.linger_seconds = linger_seconds
        self._batches: dict[str, _Batch] = {}
        self._finished = dict.fromkeys(f.BATCH_STATUSES, 0)
        self._lock = threading.Lock()

    def running(
        self,
        batchjob: str,
        model: str,
        shards: Mapping[int, ShardMetrics | None],
        in_flight: int,
        progress: float,
    ) -> None:
        """The shards' latest reports (None: reported, but unreadable) of a batch whose workers run."""
        with self._lock:
            batch = self._batches.setdefault(batchjob, _Batch(model))
            batch.model, batch.in_flight, batch.progress = model, in_flight, progress
            batch.running, batch.finished_at = True, None
            for index, state in shards.items():
                if state is not None:
                    batch.shards[index] = state
            batch.unreadable = {i for i, state in shards.items() if state is None and i not in batch.shards}

    def finished(self, batchjob: str, status: str, final: ShardMetrics | None, progress: float | None) -> None:
        """A batch reached `status`: its final state (the merge's; None keeps the shards' last) and progress
        (None keeps the last)."""
        with self._lock:
            self._finished[status] = self._finished.get(status, 0) + 1
            batch = self._batches.get(batchjob)
            if batch is None and final is None:
                return  # it never ran: nothing to show but the count
            if batch is None:
                batch = self._batches[batchjob] = _Batch(_model_of(final))
            if final is not None:
                batch.final = final
            batch.running, batch.in_flight = False, 0
            if progress is not None:
                batch.progress = progress
            batch.finished_at = self._clock()

    def forget(self, batchjob: str) -> None:
        with self._lock:
            self._batches.pop(batchjob, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            for key, batch in list(self._batches.items()):
                if batch.finished_at is not None and now - batch.finished_at > self.linger_seconds:
                    del self._batches[key]
            batches = [(key, _Snapshot.of(batch)) for key, batch in sorted(self._batches.items())]
            finished = dict(self._finished)
        yield from _cumulative(batches)
        yield from _gauges(batches)
        done = CounterMetricFamily(f.BATCHES_FINISHED.name, f.BATCHES_FINISHED.documentation, labels=["status"])
        for status, count in sorted(finished.items()):
            done.add_metric([status], count)
        yield done


def _model_of(state: ShardMetrics | None) -> str:
    for name, labels in state.histograms if state else {}:
        if name == f.E2E_REQUEST_LATENCY.name:
            return labels[0]
    return ""


@dataclass(frozen=True)
class _Snapshot:
    """A batch as one scrape shows it, taken under the lock: later reports do not change it mid-scrape."""

    state: ShardMetrics | None
    model: str
    running: bool
    progress: float
    in_flight: int

    @classmethod
    def of(cls, batch: _Batch) -> _Snapshot:
        return cls(batch.state(), batch.model, batch.running, batch.progress, batch.in_flight)


def _cumulative(batches: list[tuple[str, _Snapshot]]) -> Iterator[Metric]:
    built: dict[str, CounterMetricFamily | HistogramMetricFamily] = {}

    def family(spec: Family) -> CounterMetricFamily | HistogramMetricFamily:
        if spec.name not in built:
            kind = CounterMetricFamily if spec.kind == "counter" else HistogramMetricFamily
            built[spec.name] = kind(spec.name, spec.documentation, labels=[*spec.labels, BATCHJOB_LABEL])
        return built[spec.name]

    for batchjob, batch in batches:
        state = batch.state
        if state is None:
            continue
        counters = {(spec.name, labels): 0.0 for spec, labels in ZERO_SERIES if spec.kind == "counter"}
        counters.update(state.counters)
        for (name, labels), value in sorted(counters.items()):
            counter = family(SHARD_FAMILIES[name])
            assert isinstance(counter, CounterMetricFamily)
            counter.add_metric([*labels, batchjob], value)
        histograms = dict(state.histograms)
        histograms.setdefault(
            (f.BATCH_REQUEST_DURATION.name, ()), Buckets([0] * (len(f.BATCH_REQUEST_DURATION.buckets) + 1))
        )
        for (name, labels), series in sorted(histograms.items()):
            spec = SHARD_FAMILIES[name]
            histogram = family(spec)
            assert isinstance(histogram, HistogramMetricFamily)
            cumulative, buckets = 0, []
            for bound, count in zip([*spec.buckets, float("inf")], series.counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            histogram.add_metric([*labels, batchjob], buckets, series.total)
    yield from built.values()


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _gauges(batches: list[tuple[str, _Snapshot]]) -> Iterator[Metric]:
    if not batches:
        return
    running = GaugeMetricFamily(f.BATCH_RUNNING.name, f.BATCH_RUNNING.documentation, labels=[BATCHJOB_LABEL])
    progress = GaugeMetricFamily(f.BATCH_PROGRESS.name, f.BATCH_PROGRESS.documentation, labels=[BATCHJOB_LABEL])
    in_flight = GaugeMetricFamily(
        f.BATCH_REQUESTS_IN_FLIGHT.name, f.BATCH_REQUESTS_IN_FLIGHT.documentation, labels=[BATCHJOB_LABEL]
    )
    engine = GaugeMetricFamily(
        f.REQUESTS_RUNNING.name, f.REQUESTS_RUNNING.documentation, labels=[*f.REQUESTS_RUNNING.labels, BATCHJOB_LABEL]
    )
    for batchjob, batch in batches:
        running.add_metric([batchjob], 1.0 if batch.running else 0.0)
        progress.add_metric([batchjob], batch.progress)
        in_flight.add_metric([batchjob], batch.in_flight)
        if batch.model:
            engine.add_metric([batch.model, f.LLAMACPP, batchjob], batch.in_flight)
    yield from (running, progress, in_flight, engine)


#: The operator's one instance; `register` puts it into the registry its /metrics serves.
BATCH_JOBS = BatchJobMetrics()
_registered: set[int] = set()


def register(registry: CollectorRegistry = REGISTRY) -> None:
    """Serve BATCH_JOBS from `registry` (once). Raises ValueError when the registry already has these families,
    i.e. when this process runs batch requests itself (kubeinfer.metrics.batch); the operator never does."""
    if id(registry) not in _registered:
        registry.register(BATCH_JOBS)
        _registered.add(id(registry))
