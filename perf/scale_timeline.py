"""When each BenchmarkMatrix reaches each milestone, as seen by watches on the matrices and their Jobs.

Times are this process's wall clock when the watch event arrives, compared with the time the matrix's
create call returned; the watch lag is part of every figure and the same for all of them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import watch
from kubernetes.client import ApiClient, BatchV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubeinfer.dev", "v1alpha1", "benchmarkmatrices"
FINALIZER = f"{GROUP}/finalizer"
MATRIX_LABEL = f"{GROUP}/matrix"
FINISHED = ("Completed", "Failed")
WATCH_SECONDS = 30


@dataclass
class MatrixTimes:
    created: float
    picked_up: float | None = None  # kopf added its finalizer
    first_job: float | None = None  # the daemon created the matrix's first runner Job
    first_status: float | None = None  # the operator's first status write (status.phase set)
    finished: float | None = None
    phase: str | None = None
    cells_done: int = 0
    cells_total: int = 0


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p95 and max (nearest-rank), in seconds rounded to milliseconds."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": round(rank(50), 3), "p95": round(rank(95), 3), "max": round(ordered[-1], 3)}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, delta in edges:
        current += delta
        best = max(best, current)
    return best


@dataclass
class Timeline:
    api: ApiClient
    namespace: str
    matrices: dict[str, MatrixTimes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def created(self, name: str, when: float) -> None:
        with self._lock:
            self.matrices[name] = MatrixTimes(created=when)

    def start(self) -> Timeline:
        custom, batch = CustomObjectsApi(self.api), BatchV1Api(self.api)
        self._threads = [
            threading.Thread(
                target=self._watch,
                args=(custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL), self._on_matrix),
                name="timeline-matrices",
                daemon=True,
            ),
            threading.Thread(
                target=self._watch,
                args=(batch.list_namespaced_job, (self.namespace,), self._on_job),
                name="timeline-jobs",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WATCH_SECONDS + 5)

    def unfinished(self) -> list[str]:
        with self._lock:
            return sorted(name for name, t in self.matrices.items() if t.finished is None)

    def _on_matrix(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        with self._lock:
            times = self.matrices.get(name)
            if times is None:
                return
            if times.picked_up is None and FINALIZER in (obj["metadata"].get("finalizers") or []):
                times.picked_up = now
            if times.first_status is None and status.get("phase"):
                times.first_status = now
            times.cells_done = int(status.get("cellsDone") or 0)
            times.cells_total = int(status.get("cellsTotal") or 0)
            times.phase = status.get("phase")
            if times.finished is None and times.phase in FINISHED:
                times.finished = now

    def _on_job(self, obj: dict[str, Any], now: float) -> None:
        matrix = (obj["metadata"].get("labels") or {}).get(MATRIX_LABEL)
        with self._lock:
            times = self.matrices.get(matrix or "")
            if times is not None and times.first_job is None:
                times.first_job = now

    def _watch(self, lister: Any, args: tuple[Any, ...], handle: Any) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = json.loads(lister(*args, _preload_content=False).data)
                    version = listing["metadata"]["resourceVersion"]
                    now = time.time()
                    for item in listing["items"]:
                        handle(item, now)
                stream = watch.Watch().stream(
                    lister, *args, resource_version=version, timeout_seconds=WATCH_SECONDS, deserialize=False
                )
                for event in stream:
                    if event["type"] == "ERROR":
                        version = None
                        break
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "DELETED":
                        handle(obj, time.time())
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("timeline watch failed: %s", exc)
                    self._stop.wait(1)
                version = None
            except urllib3.exceptions.HTTPError as exc:
                log.warning("timeline watch broke: %s", exc)
                self._stop.wait(1)
                version = None

    def summary(self) -> dict[str, Any]:
        """Latency percentiles from creation to each milestone, and how many matrices were in flight at once."""
        with self._lock:
            items = list(self.matrices.values())

        def since_created(attr: str) -> list[float]:
            return [getattr(t, attr) - t.created for t in items if getattr(t, attr) is not None]

        in_flight = [(t.first_job, t.finished) for t in items if t.first_job is not None and t.finished is not None]
        work = [
            (t.finished - t.first_job) / t.cells_total
            for t in items
            if t.first_job is not None and t.finished is not None and t.cells_total
        ]
        return {
            "created_to_picked_up_seconds": percentiles(since_created("picked_up")),
            "created_to_first_job_seconds": percentiles(since_created("first_job")),
            "created_to_first_status_write_seconds": percentiles(since_created("first_status")),
            "created_to_completed_seconds": percentiles(since_created("finished")),
            "per_cell_seconds_once_started": percentiles(work),
            "max_matrices_in_flight": max_overlap(in_flight),
        }
