"""Calls back into Label Studio with label-studio-sdk (blocking; the router runs them in a thread)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)


class SdkMissingError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("label-studio-sdk is not installed: pip install 'kubeinfer[labelstudio]'")


def client(url: str, token: str) -> LabelStudio:
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise SdkMissingError() from None
    return LabelStudio(base_url=url, api_key=token, timeout=30)  # type: ignore[no-untyped-call]


@dataclass
class WriteCounts:
    written: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    failed_ids: set[int] = field(default_factory=set)

    def fail(self, task_id: int, message: str) -> None:
        self.failed += 1
        self.failed_ids.add(task_id)
        log.warning("Label Studio task not predicted", extra={"task": task_id, "reason": message})
        if len(self.errors) < 20:
            self.errors.append(f"task {task_id}: {message}")


def fetch_task_data(
    studio: LabelStudio, ls_project: int, task_ids: list[int], counts: WriteCounts
) -> dict[int, dict[str, Any]]:
    """Each task's `data`, listed in one paged query; a task Label Studio does not return is counted as failed.

    The list API is used rather than one `tasks.get` per task: getting a single task makes Label Studio ask
    its ML backend (this gateway) for a prediction of that task first.
    """
    wanted = set(task_ids)
    query = json.dumps({"selectedItems": {"all": False, "included": sorted(wanted)}})
    found: dict[int, dict[str, Any]] = {}
    task: Any
    try:
        for task in studio.tasks.list(project=ls_project, query=query, fields="all", page_size=100):
            if task.id in wanted:
                found[task.id] = dict(task.data or {})
    except Exception as exc:  # any SDK or HTTP error: the tasks not read yet are counted, the job goes on
        log.warning("cannot list Label Studio tasks", extra={"project": ls_project, "reason": str(exc)})
    for task_id in task_ids:
        if task_id not in found:
            counts.fail(task_id, "Label Studio did not return the task")
    return found


def write_predictions(studio: LabelStudio, predictions: dict[int, dict[str, Any]], counts: WriteCounts) -> None:
    """One prediction per task, skipped where the task already has one of the same model version."""
    for task_id, pred in predictions.items():
        try:
            existing = studio.predictions.list(task=task_id)
            if any(p.model_version == pred["model_version"] for p in existing):
                counts.skipped += 1
                continue
            studio.predictions.create(
                task=task_id,
                result=pred["result"],
                score=pred.get("score"),
                model_version=pred["model_version"],
            )
            counts.written += 1
        except Exception as exc:  # one rejected prediction is counted, the rest are still written
            counts.fail(task_id, f"cannot write the prediction: {type(exc).__name__}: {exc}")
