"""The run's checkpoint: written atomically after every cell, read back by `--resume`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult


class CheckpointMismatchError(ValueError):
    """There is no checkpoint to resume, or it was written for another spec."""


class CheckpointStore(Protocol):
    """Where a run's progress lives: a file for `kubeinfer bench run`, the resource's status in a cluster."""

    def load(self, spec: BenchmarkMatrixSpec) -> Checkpoint: ...

    def save(self, checkpoint: Checkpoint) -> None: ...


class FileCheckpointStore:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def load(self, spec: BenchmarkMatrixSpec) -> Checkpoint:
        return Checkpoint.load(self.out_dir, spec)

    def save(self, checkpoint: Checkpoint) -> None:
        checkpoint.save(self.out_dir)


def spec_fingerprint(spec: BenchmarkMatrixSpec) -> str:
    canonical = json.dumps(spec.to_manifest(), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    fingerprint: str
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    elapsed_seconds: float = 0.0
    cells: dict[str, CellResult] = field(default_factory=dict)
    stress_done: bool = False

    @staticmethod
    def path(out_dir: Path) -> Path:
        return out_dir / "checkpoint.json"

    @classmethod
    def load(cls, out_dir: Path, spec: BenchmarkMatrixSpec) -> Checkpoint:
        path = cls.path(out_dir)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointMismatchError(f"nothing to resume: {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise CheckpointMismatchError(f"{path} is not valid JSON ({exc}); start without --resume") from None
        if data.get("fingerprint") != spec_fingerprint(spec):
            raise CheckpointMismatchError(
                f"{path} was written for a different manifest spec; start without --resume or restore the manifest"
            )
        cells = {key: CellResult.model_validate(value) for key, value in data.get("cells", {}).items()}
        return cls(
            data["fingerprint"],
            data.get("started_at", ""),
            data.get("elapsed_seconds", 0.0),
            cells,
            data.get("stress_done", False),
        )

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = self.path(out_dir)
        payload = {
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "elapsed_seconds": self.elapsed_seconds,
            "stress_done": self.stress_done,
            "cells": {key: cell.model_dump(mode="json") for key, cell in self.cells.items()},
        }
        tmp = path.with_name(f".{path.name}.partial")
        with tmp.open("w") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
