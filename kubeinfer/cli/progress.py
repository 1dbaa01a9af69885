"""Progress bars on stderr for long work (downloads, uploads, batch waits); nothing when it is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kubeinfer.cli.common import err_console

#: Characters of a step's name on a bar; the full line goes to logs.
DESCRIPTION = 48
#: (bytes done, bytes in all or None, bytes per second), as kubeinfer.models.download reports them.
ByteCallback = Callable[[int, int | None, float], None]


def interactive() -> bool:
    """Bars only for a person at a terminal; logs and pipes get the result lines alone."""
    return err_console.is_terminal


def _bar(*columns: Any) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=err_console,
        disable=not interactive(),
        transient=False,
    )


def byte_progress() -> Progress:
    """Bytes, rate and time left."""
    return _bar(DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())


def count_progress() -> Progress:
    """Items done of all, time elapsed and left (a batch's requests)."""
    return _bar(MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())


@contextmanager
def download_bar(description: str) -> Iterator[tuple[ByteCallback, Callable[[str], None]]]:
    """A byte bar fed by a download callback, and a `log` that names the current step on it."""
    with byte_progress() as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None, _rate: float) -> None:
            progress.update(task, completed=done, total=total)

        def log(message: str) -> None:
            progress.update(
                task, description=message if len(message) <= DESCRIPTION else message[: DESCRIPTION - 1] + "…"
            )
            if not interactive():
                err_console.print(message, highlight=False, markup=False, soft_wrap=True)

        yield update, log


class ReadProgress:
    """A binary file whose reads advance a progress task: an upload's bytes as they are sent."""

    def __init__(self, handle: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._handle = handle
        self._progress = progress
        self._task = task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.update(self._task, completed=self._handle.tell())
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()
