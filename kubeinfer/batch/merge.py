"""Merge a cluster batch's shard logs into one output and one error file, in the input's order, atomically.

Runs only once every worker has stopped. Each custom_id gets at most one line: the first one found in
the shard logs (a worker writes a request once, so a second line could only come from a bug, and is
dropped rather than published). A request with no line at all gets an error line with `missing_code`
(an expired batch, a worker that gave up) or, for a cancelled batch, none. The files are written under
temporary names in the batch's work directory and renamed into the blob directory (the same volume), so a
merge killed halfway is simply run again. `LocalBlobStore` is not instantiated here: it clears its upload
temporaries on start, which would break a gateway's upload in flight on the shared volume.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kubeinfer.batch.lines import missing_line
from kubeinfer.batch.observation_log import fold, observation_logs
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.metrics.observations import RequestObservation, contributions

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    total: int = 0
    completed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duplicates: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    #: Requests without a result line that got a `missing_code` line here.
    missing: int = 0
    #: The batch's final metric state (kubeinfer.metrics.shard_state): every shard's observations of requests
    #: with a line, plus the missing ones; what the operator exports once the batch is final.
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Line:
    log: int
    offset: int
    length: int
    error: bool


def result_file_ids(batch_id: str) -> tuple[str, str]:
    """The ids of a batch's output and error files, derived from its id like the embedded gateway's."""
    suffix = batch_id.removeprefix("batch-")
    return f"file-output-{suffix}", f"file-errors-{suffix}"


def _index(paths: list[Path], result: MergeResult) -> dict[str, _Line]:
    found: dict[str, _Line] = {}
    for number, path in enumerate(paths):
        error = path.name.endswith(".errors.jsonl")
        offset = 0
        with path.open("rb") as handle:
            for raw in handle:
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    break  # torn by a kill; the request was sent again or is missing
                try:
                    custom_id = json.loads(raw)["custom_id"]
                except (ValueError, KeyError, TypeError):
                    break
                if custom_id in found:
                    result.duplicates += 1
                    continue
                found[custom_id] = _Line(number, start, len(raw), error)
    return found


def _usage(raw: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(raw)["response"]["body"]["usage"]
        return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0, 0


def _publish(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_batch(layout: BatchLayout, input_path: Path, missing_code: str | None = None) -> MergeResult:
    result = MergeResult()
    paths = layout.shard_logs()
    lines = _index(paths, result)
    output_id, error_id = result_file_ids(layout.batch_id)
    handles = [path.open("rb") for path in paths]
    layout.work.mkdir(parents=True, exist_ok=True)
    layout.blobs.mkdir(parents=True, exist_ok=True)
    out_fd, out_name = tempfile.mkstemp(dir=layout.work, prefix=".merge-output.")
    err_fd, err_name = tempfile.mkstemp(dir=layout.work, prefix=".merge-errors.")
    try:
        with os.fdopen(out_fd, "wb") as out, os.fdopen(err_fd, "wb") as err, input_path.open("rb") as source:
            for raw in source:
                if not raw.strip():
                    continue
                result.total += 1
                custom_id = json.loads(raw)["custom_id"]
                line = lines.get(custom_id)
                if line is not None:
                    handle = handles[line.log]
                    handle.seek(line.offset)
                    data = handle.read(line.length)
                    _write(err if line.error else out, data)
                    if line.error:
                        result.failed += 1
                    else:
                        result.completed += 1
                        prompt, completion = _usage(data)
                        result.prompt_tokens += prompt
                        result.completion_tokens += completion
                elif missing_code is not None:
                    missing = missing_line(custom_id, missing_code)
                    _write(err, (json.dumps(missing, separators=(",", ":")) + "\n").encode())
                    result.failed += 1
                    result.missing += 1
            for written in (out, err):
                written.flush()
                os.fsync(written.fileno())
        if result.completed:
            _publish(Path(out_name), layout.blobs / output_id)
            result.output_file_id = output_id
        if result.failed:
            _publish(Path(err_name), layout.blobs / error_id)
            result.error_file_id = error_id
    finally:
        for handle in handles:
            handle.close()
        for name in (out_name, err_name):
            Path(name).unlink(missing_ok=True)
    if result.duplicates:
        log.warning("dropped duplicate result lines", extra={"batch_id": layout.batch_id, "lines": result.duplicates})
    result.metrics = _final_metrics(layout, set(lines), result.missing, missing_code)
    return result


def _final_metrics(layout: BatchLayout, done: set[str], missing: int, missing_code: str | None) -> dict[str, Any]:
    state = fold(observation_logs(layout.work), done).state
    status = "expired" if missing_code == "batch_expired" else "failed"
    for _ in range(missing):
        state.add_all(contributions(RequestObservation(status)))
    return state.as_json()


def _write(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)
