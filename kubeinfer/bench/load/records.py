"""Raw per-request records as JSON Lines, one file per cell and profile, for re-analysis after the run."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
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


def collecting_sink() -> tuple[RecordSink, dict[str, list[dict[str, Any]]]]:
    """A sink that keeps each profile's records in memory, and the dict it fills (a cluster step ships them)."""
    kept: dict[str, list[dict[str, Any]]] = {}

    def keep(profile: str, records: Sequence[dict[str, Any]]) -> None:
        kept[profile] = list(records)

    return keep, kept


def pack_records(by_profile: Mapping[str, Sequence[dict[str, Any]]]) -> bytes:
    """Every profile's records as one gzip-compressed JSON Lines stream; each record names its profile."""
    lines = (
        json.dumps(record | {"profile": profile}, separators=(",", ":"))
        for profile, records in by_profile.items()
        for record in records
    )
    return gzip.compress("".join(f"{line}\n" for line in lines).encode(), compresslevel=6, mtime=0)


def unpack_records(blob: bytes, source: str) -> dict[str, list[dict[str, Any]]]:
    """The records `pack_records` packed, by profile; a damaged stream raises ValueError naming `source`."""
    try:
        text = gzip.decompress(blob).decode()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not a gzip-compressed JSON Lines stream ({exc})") from None
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: line {number}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("profile"), str):
            raise ValueError(f"{source}: line {number}: a record must be a JSON object with a profile")
        by_profile.setdefault(record["profile"], []).append(record)
    return by_profile


def write_cell_records(directory: Path, cell: str, blobs: Sequence[bytes]) -> int:
    """Write the packed records of `cell` (`model/quant`) as `bench run` does; returns how many were written.

    Raises ValueError naming the cell when a blob is damaged; nothing of that cell is written then.
    """
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for blob in blobs:
        for profile, records in unpack_records(blob, f"the request records of {cell}").items():
            by_profile.setdefault(profile, []).extend(records)
    sink = jsonl_sink(directory, cell.replace("/", "_"))
    for profile, records in by_profile.items():
        sink(profile, records)
    return sum(len(records) for records in by_profile.values())
