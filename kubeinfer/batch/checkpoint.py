"""Append-only result logs that double as the checkpoint of a running batch.

A request counts as done once its result line is in the output or error log. Each line is written with
one `write` on an O_APPEND descriptor and fsynced, so after a SIGKILL the log holds whole lines plus at
most one torn final line; `recover` cuts that line off and rebuilds the done-set from what is left. A
request is therefore answered at most once in the logs, and any request whose line was lost is simply
sent again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Recovered:
    done: set[str] = field(default_factory=set)
    lines: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated_bytes: int = 0


class ResultLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def recover(self) -> Recovered:
        """Truncate anything after the last intact line and return what the log already answers."""
        result = Recovered()
        if not self.path.exists():
            return result
        good = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                try:
                    line = json.loads(raw)
                    custom_id = line["custom_id"]
                except (ValueError, KeyError, TypeError):
                    break
                if custom_id in result.done:  # cannot happen with this writer; never count twice
                    break
                result.done.add(custom_id)
                result.lines += 1
                usage = _usage(line)
                result.prompt_tokens += usage[0]
                result.completion_tokens += usage[1]
                good += len(raw)
        size = self.path.stat().st_size
        if size > good:
            result.truncated_bytes = size - good
            with self.path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        return result

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _usage(line: dict[str, Any]) -> tuple[int, int]:
    try:
        usage = line["response"]["body"]["usage"]
        return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0, 0
