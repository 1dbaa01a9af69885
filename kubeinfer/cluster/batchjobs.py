"""BatchJob resources of one namespace: list, show and cancel (`spec.cancel`), through the CustomObjectsApi."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from kubeinfer.cluster.workers import REQUEST_TIMEOUT
from kubeinfer.kube.errors import ClusterError, NotFound, api_errors, translate
from kubeinfer.resources.names import BATCH_PLURAL, GROUP, VERSION

PLURAL = BATCH_PLURAL
FINISHED = ("completed", "failed", "expired")
STOPPING = ("cancelling", "cancelled")


class CannotCancel(ClusterError):
    pass


@dataclass
class BatchSummary:
    """One batch as `kubeinfer batches list` shows it; the embedded gateway's Batch objects map to it too."""

    id: str
    project: str
    status: str
    model: str | None
    completed: int
    failed: int
    total: int
    created_at: int | None
    workers: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _created(body: dict[str, Any]) -> int | None:
    stamp = body["metadata"].get("creationTimestamp")
    if not stamp:
        return None
    return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())


def summary_of(body: dict[str, Any]) -> BatchSummary:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    counts = status.get("requestCounts") or {}
    return BatchSummary(
        id=body["metadata"]["name"],
        project=spec.get("project", "default"),
        status=status.get("status", "validating"),
        model=status.get("model") or spec.get("model"),
        completed=int(counts.get("completed", 0)),
        failed=int(counts.get("failed", 0)),
        total=int(counts.get("total", 0)),
        created_at=status.get("createdAt") or _created(body),
        workers=spec.get("workers"),
    )


class ClusterBatches:
    def __init__(self, namespace: str, client: Any) -> None:
        from kubernetes.client import CustomObjectsApi

        self.namespace = namespace
        self.custom = CustomObjectsApi(client)

    def _call(self, what: str, method: Any, *args: Any) -> dict[str, Any]:
        try:
            response = method(GROUP, VERSION, self.namespace, PLURAL, *args, _request_timeout=REQUEST_TIMEOUT)
        except api_errors() as exc:
            raise translate(exc, what, self.custom.api_client.configuration.host) from None
        body: dict[str, Any] = response
        return body

    def list(self, project: str | None = None) -> list[BatchSummary]:
        """Newest first; only `project`'s when given."""
        items = self._call(f"batchjobs in namespace {self.namespace}", self.custom.list_namespaced_custom_object)
        batches = [summary_of(i) for i in items["items"]]
        if project is not None:
            batches = [b for b in batches if b.project == project]
        return sorted(batches, key=lambda b: (b.created_at or 0, b.id), reverse=True)

    def get(self, batch_id: str) -> dict[str, Any]:
        """The whole BatchJob (metadata, spec, status)."""
        try:
            return self._call(f"batchjob {batch_id}", self.custom.get_namespaced_custom_object, batch_id)
        except NotFound:
            raise NotFound(f"no batch {batch_id} in namespace {self.namespace}") from None

    def cancel(self, batch_id: str) -> BatchSummary:
        """Set `spec.cancel`; the operator stops the workers and publishes what finished."""
        current = summary_of(self.get(batch_id))
        if current.status in FINISHED:
            raise CannotCancel(f"batch {batch_id} is {current.status} and cannot be cancelled")
        if current.status in STOPPING:
            return current
        patched = self._call(
            f"cancel batchjob {batch_id}",
            self.custom.patch_namespaced_custom_object,
            batch_id,
            {"spec": {"cancel": True}},
        )
        result = summary_of(patched)
        result.status = "cancelling"  # what the operator moves it to next; shown at once, as OpenAI answers cancel
        return result
