"""Log files the console can show (model servers, workers, benchmark cells), their tail and a search.

Files are found by listing known folders and picked by id from that list; an id is never turned into a
path, so a request cannot name a file outside those folders.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Bytes read per step when walking back from the end of a file to find its last lines.
BLOCK = 64 * 1024


class LogNotFound(LookupError):
    def __init__(self, log_id: str) -> None:
        super().__init__(f"No such log: {log_id}")


@dataclass(frozen=True)
class LogFile:
    id: str
    source: str
    path: Path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def _logs_in(folder: Path | None, prefix: str, source: str) -> list[LogFile]:
    if folder is None or not folder.is_dir():
        return []
    return [LogFile(f"{prefix}/{p.name}", source, p) for p in sorted(folder.glob("*.log")) if p.is_file()]


def log_files(data_dir: Path, logs_dir: Path | None, reports_dir: Path | None) -> list[LogFile]:
    """The gateway's own llama-server log, `logs_dir/*.log`, and each benchmark report's `logs/*.log`."""
    found = [f for f in _logs_in(data_dir, "gateway", "gateway") if f.path.name == "llama-server.log"]
    found += _logs_in(logs_dir, "logs", "logs folder")
    if reports_dir is not None and reports_dir.is_dir():
        for matrix in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
            found += _logs_in(matrix / "logs", f"matrix/{matrix.name}", f"matrix {matrix.name}")
    return found


def find_log(files: list[LogFile], log_id: str) -> LogFile:
    for log in files:
        if log.id == log_id:
            return log
    raise LogNotFound(log_id)


def _last_lines(path: Path, count: int) -> list[str]:
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= count:
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


def search(lines: Iterable[str], count: int, query: str = "") -> tuple[list[str], int]:
    """`tail` over lines already read (a pod's log from the API): the last `count` (matching) lines, and the count."""
    needle = query.casefold()
    matching = [line for line in lines if needle in line.casefold()] if query else list(lines)
    return matching[-count:], len(matching) if query else min(count, len(matching))


def tail(path: Path, count: int, query: str = "") -> tuple[list[str], int]:
    """The last `count` lines, or with a query the last `count` lines containing it (case-insensitive).

    Returns the lines and how many lines matched in the whole file (the number of lines shown when there
    is no query). A search reads the whole file; a plain tail reads only its end.
    """
    if not query:
        lines = _last_lines(path, count)
        return lines, len(lines)
    needle = query.casefold()
    kept: deque[str] = deque(maxlen=count)
    matched = 0
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if needle in line.casefold():
                matched += 1
                kept.append(line.rstrip("\n"))
    return list(kept), matched
