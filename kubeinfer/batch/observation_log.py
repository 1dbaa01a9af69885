"""A shard's metric observations on the shared store, next to its result logs: `shard-<i>.observations.ndjson`.

One line per finished request (`{"custom_id": ..., **RequestObservation.as_json()}`), written with one
`write` *before* the request's result line. So, after a kill at any moment:

- a request with a result line has an observation line (written first);
- a request with an observation line but no result line is sent again and gets a second observation line;
  the last line of a custom_id wins;
- only requests with a result line are counted.

Hence `read` counts each answered request exactly once, however often its shard was retried, and the state
it rebuilds holds everything a predecessor worker ever published (it published only requests whose result line
was written). The name stays outside `BatchLayout.shard_logs`' `shard-*.*.jsonl`, so the merge never mistakes it
for a result log. A line that cannot be read is skipped with one warning: metrics must never stop a batch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from kubeinfer.metrics.observations import RequestObservation, contributions
from kubeinfer.metrics.shard_state import ShardMetrics

log = logging.getLogger(__name__)


def observation_log_path(work: Path, index: int) -> Path:
    return work / f"shard-{index}.observations.ndjson"


def observation_logs(work: Path) -> list[Path]:
    return sorted(work.glob("shard-*.observations.ndjson")) if work.is_dir() else []


@dataclass
class Folded:
    state: ShardMetrics
    #: Lines skipped because they could not be read (torn, not JSON, or not an observation).
    skipped: int = 0
    #: Bytes of a torn last line (cut by `recover`).
    torn_bytes: int = 0


def fold(paths: list[Path], done: Collection[str]) -> Folded:
    """The state of the observations of `paths` whose request is in `done` (last line per custom_id wins)."""
    last: dict[str, RequestObservation] = {}
    skipped = torn = 0
    first_error = ""
    for path in paths:
        if not path.exists():
            continue
        with path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    torn += len(raw)
                    break
                try:
                    data = json.loads(raw)
                    custom_id = data.pop("custom_id")
                    if not isinstance(custom_id, str):
                        raise TypeError("custom_id is not a string")
                    last[custom_id] = RequestObservation.from_json(data)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    skipped += 1
                    first_error = first_error or f"{path.name}: {exc}"
    if skipped:
        log.warning("unreadable metric observations skipped", extra={"lines": skipped, "first": first_error})
    state = ShardMetrics()
    for custom_id, observation in last.items():
        if custom_id in done:
            state.add_all(contributions(observation))
    return Folded(state, skipped, torn)


class ObservationLog:
    """The observation log of one shard: appended by its worker; `recover` rebuilds its state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def recover(self, done: Collection[str]) -> ShardMetrics:
        """The shard's state so far, after cutting a torn last line (so the next append starts a line)."""
        folded = fold([self.path], done)
        if folded.torn_bytes:
            size = self.path.stat().st_size
            with self.path.open("r+b") as handle:
                handle.truncate(size - folded.torn_bytes)
                os.fsync(handle.fileno())
        return folded.state

    def append(self, custom_id: str, observation: RequestObservation) -> None:
        line = {"custom_id": custom_id, **observation.as_json()}
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # No fsync: a killed pod's writes are in the node's page cache, and the result line after this one is
        # fsynced; only a node crash could lose an observation, which then counts nothing (never twice).
        os.write(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
