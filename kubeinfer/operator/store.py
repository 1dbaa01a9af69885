"""The BenchmarkMatrix status is the checkpoint: cells land there as they finish, so a restart resumes."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kubeinfer.bench.checkpoint import Checkpoint, spec_fingerprint
from kubeinfer.bench.planner import plan
from kubeinfer.bench.recommend import best_cell
from kubeinfer.bench.runner import ordered_results
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, CellStatus
from kubeinfer.resources.names import GROUP, MATRIX_PLURAL, VERSION

PLURAL = MATRIX_PLURAL


class StatusCheckpointStore:
    def __init__(self, api: client.CustomObjectsApi, namespace: str, name: str, spec: BenchmarkMatrixSpec) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.cells = plan(spec)

    def read_status(self) -> dict[str, Any]:
        body = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        return dict(body.get("status") or {})

    def load(self, spec: BenchmarkMatrixSpec) -> Checkpoint:
        """Finished cells from the status; a status written for another spec starts over."""
        status = self.read_status()
        fingerprint = spec_fingerprint(spec)
        if status.get("fingerprint") != fingerprint:
            return Checkpoint(fingerprint)
        cells = [CellResult.model_validate(item) for item in status.get("cells", [])]
        finished = {cell.key: cell for cell in cells if cell.status.finished}
        return Checkpoint(
            fingerprint,
            cells=finished,
            stress_done=bool(status.get("stressDone")),
        )

    def save(self, checkpoint: Checkpoint) -> None:
        results = ordered_results(self.cells, checkpoint.cells)
        done = sum(1 for r in results if r.status != CellStatus.pending)
        self.patch(
            {
                "phase": "Running",
                "fingerprint": checkpoint.fingerprint,
                "cellsTotal": len(results),
                "cellsDone": done,
                "stressDone": checkpoint.stress_done,
                "best": best_cell(results),
                "cells": [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in results],
            }
        )

    def patch(self, status: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"status": status}
        )
