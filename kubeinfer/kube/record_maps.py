"""A cluster cell's raw per-request records, kept in ConfigMaps beside its report.

The measure Job has no volume the CLI can read (the data volume may be another node's, the bucket may be
absent), so it packs the records it sent (`kubeinfer.bench.load.records.pack_records`, gzip) and writes
them in parts of at most PART_BYTES, ConfigMaps `<job>-requests-<i>` owned by the matrix, so they go when
it goes. `kubeinfer bench report` lists them by label and writes the files `bench run` writes.

A measure Job that runs again for a cell writes every part again under a new run id; the reader takes the
run of part 0 (each run writes it first) and refuses a run with a part missing, so a leftover part of an
earlier, longer run is never mixed in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.resources.names import COMPONENT_LABEL, GROUP, MATRIX_LABEL, child_labels, records_name, slug

RECORDS_COMPONENT = "requests"
#: One part's bytes before base64: a ConfigMap holds at most 1 MiB, base64 adds a third.
PART_BYTES = 512 * 1024
#: Parts a cell may write: 8 MiB compressed, some 40 MiB of records.
MAX_PARTS = 16
PART_KEY = "requests.jsonl.gz.part"
CELL_ANNOTATION = f"{GROUP}/cell"
MATRIX_ANNOTATION = f"{GROUP}/matrix-name"
JOB_ANNOTATION = f"{GROUP}/records-of"
PART_ANNOTATION = f"{GROUP}/part"
RUN_ANNOTATION = f"{GROUP}/run"


class RecordsTooLarge(ValueError):
    """The compressed records need more than MAX_PARTS ConfigMaps."""


def records_selector(matrix: str) -> str:
    return f"{MATRIX_LABEL}={slug(matrix)[:63]},{COMPONENT_LABEL}={RECORDS_COMPONENT}"


def record_maps(
    job: str, matrix: str, cell: str, blob: bytes, owner: dict[str, Any] | None, run: str
) -> list[dict[str, Any]]:
    """The ConfigMap bodies holding `blob` (packed records of `cell`, written by Job `job`), part 0 first."""
    parts = [blob[start : start + PART_BYTES] for start in range(0, len(blob), PART_BYTES)] or [b""]
    if len(parts) > MAX_PARTS:
        raise RecordsTooLarge(
            f"{len(blob)} bytes of compressed request records need {len(parts)} ConfigMaps of "
            f"{PART_BYTES // 1024} KiB, more than the {MAX_PARTS} a cell may write; lower requestsPerLevel "
            "or the number of levels, or run the matrix with `kubeinfer bench run` to keep them"
        )
    labels = child_labels(matrix, cell, RECORDS_COMPONENT)
    return [
        {
            "metadata": {
                "name": records_name(job, index),
                "labels": labels,
                "annotations": {
                    CELL_ANNOTATION: cell,
                    MATRIX_ANNOTATION: matrix,
                    JOB_ANNOTATION: job,
                    PART_ANNOTATION: f"{index}/{len(parts)}",
                    RUN_ANNOTATION: run,
                },
                "ownerReferences": [owner] if owner else [],
            },
            "binaryData": {PART_KEY: base64.b64encode(part).decode()},
        }
        for index, part in enumerate(parts)
    ]


@dataclass
class AssembledRecords:
    #: Cell key to the packed records of each Job that wrote some, in Job name order.
    blobs: dict[str, list[bytes]] = field(default_factory=dict)
    #: Why a Job's records could not be put together, one line each, naming the ConfigMaps.
    problems: list[str] = field(default_factory=list)


@dataclass
class _Part:
    name: str
    index: int
    count: int
    run: str
    data: bytes


def assemble(maps: Iterable[Mapping[str, Any]], matrix: str) -> AssembledRecords:
    """Put the parts of every Job's latest run back together (ConfigMaps as JSON, as the API returns them)."""
    jobs: dict[tuple[str, str], list[_Part]] = {}
    out = AssembledRecords()
    for body in maps:
        meta = body.get("metadata") or {}
        notes = meta.get("annotations") or {}
        if notes.get(MATRIX_ANNOTATION) != matrix:
            continue
        name = str(meta.get("name"))
        try:
            part = _parse_part(name, notes, body)
        except ValueError as exc:
            out.problems.append(str(exc))
            continue
        jobs.setdefault((str(notes.get(CELL_ANNOTATION)), str(notes.get(JOB_ANNOTATION))), []).append(part)
    for (cell, job), parts in sorted(jobs.items()):
        by_index = {p.index: p for p in parts}
        first = by_index.get(0)
        if first is None:
            out.problems.append(f"records of {cell} (Job {job}): part 0 is missing")
            continue
        run = [by_index.get(i) for i in range(first.count)]
        if any(p is None or p.run != first.run or p.count != first.count for p in run):
            have = sorted(p.name for p in parts if p.run == first.run)
            out.problems.append(
                f"records of {cell} (Job {job}): run {first.run} has {len(have)} of its {first.count} parts "
                f"({', '.join(have)}); the Job was stopped while writing them"
            )
            continue
        out.blobs.setdefault(cell, []).append(b"".join(p.data for p in run if p is not None))
    return out


def _parse_part(name: str, notes: Mapping[str, str], body: Mapping[str, Any]) -> _Part:
    index, _, count = str(notes.get(PART_ANNOTATION, "")).partition("/")
    encoded = (body.get("binaryData") or {}).get(PART_KEY)
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)) or encoded is None:
        raise ValueError(f"ConfigMap {name}: not a part of request records ({PART_ANNOTATION} or {PART_KEY} wrong)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"ConfigMap {name}: {PART_KEY} is not base64") from None
    return _Part(name, int(index), int(count), str(notes.get(RUN_ANNOTATION, "")), data)
