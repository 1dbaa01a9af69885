"""Raw per-request records as JSON Lines, one file per cell and profile, for re-analysis after the run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Receives a profile's name and every request record it sent (each a JSON-ready dict).
RecordSink = Callable[[str, Sequence[dict[str, Any]]], None]


def records_path(directory: Path, stem: str, profile: str) -> Path:
    return directory / f"{stem}_{profile}.jsonl"


def jsonl_sink(directory: Path, stem: str) -> RecordSink:
    """Writes `<directory>/<stem>_<profile>.jsonl` whole (a temporary file, then a rename): a cell measured
    again after a resume replaces its records rather than appending to them."""

    def write(profile: str, records: Sequence[dict[str, Any]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = records_path(directory, stem, profile)
        partial = path.with_name(path.name + ".tmp")
        with partial.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        os.replace(partial, path)

    return write


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one JSONL file; a line that is not a JSON object raises ValueError naming the line."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: a record must be a JSON object")
        records.append(record)
    return records
