"""Split a batch's input into contiguous shards of request lines, one per worker, and lay out their logs.

A shard is a range of request numbers (blank lines do not count), so every worker derives the same plan
from the input file alone and a replacement worker for the same index owns exactly the same requests.
Each shard's result logs live in the batch's work directory on the shared store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kubeinfer.batch.checkpoint import ResultLog
from kubeinfer.batch.schedule import prefix_key


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    #: Request numbers [start, end) of the input, counting non-blank lines from 0.
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def plan(total: int, count: int, index: int) -> Shard:
    """Shard `index` of `count` over `total` requests: sizes differ by at most one."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return Shard(index, count, index * total // count, (index + 1) * total // count)


def count_requests(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def shard_offsets(path: Path, shard: Shard, done: set[str]) -> list[int]:
    """Byte offsets of the shard's unanswered lines, grouped by shared prompt prefix (first appearance)."""
    groups: dict[str, list[int]] = {}
    offset = 0
    number = -1
    with path.open("rb") as handle:
        for raw in handle:
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            number += 1
            if number < shard.start:
                continue
            if number >= shard.end:
                break
            request = json.loads(raw)
            if request["custom_id"] in done:
                continue
            groups.setdefault(prefix_key(request.get("body")), []).append(start)
    return [start for starts in groups.values() for start in starts]


@dataclass(frozen=True)
class BatchLayout:
    """Where one batch's shard logs live: `<data>/work/<batch>/shard-<i>.{output,errors}.jsonl`."""

    data_dir: Path
    batch_id: str

    @property
    def work(self) -> Path:
        return self.data_dir / "work" / self.batch_id

    @property
    def blobs(self) -> Path:
        return self.data_dir / "files"

    def logs(self, index: int) -> tuple[ResultLog, ResultLog]:
        return (
            ResultLog(self.work / f"shard-{index}.output.jsonl"),
            ResultLog(self.work / f"shard-{index}.errors.jsonl"),
        )

    def lock(self, index: int) -> Path:
        return self.work / f"shard-{index}.lock"

    def shard_logs(self) -> list[Path]:
        """Every shard log present, whatever the worker count was."""
        if not self.work.is_dir():
            return []
        return sorted(self.work.glob("shard-*.*.jsonl"))
