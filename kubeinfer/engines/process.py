"""Child processes that must never outlive kubeinfer: graceful stop, then kill, also at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_live: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


def spawn(cmd: list[str], log_path: Path | None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session with stdout and stderr appended to `log_path` (None: to kubeinfer's own).

    Its own session keeps a terminal's Ctrl-C away from the child, so kubeinfer decides how it stops
    (checkpoint first, then a graceful SIGTERM) instead of the child dying mid-request.
    """
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") if log_path is not None else contextlib.nullcontext() as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent,
        )
    with _lock:
        _live.add(proc)
    return proc


def _die_with_parent() -> None:
    """Linux: the kernel SIGKILLs the child if kubeinfer itself is killed outright (no atexit then).

    The signal follows the *thread* that spawned the child, so spawn from long-lived threads only.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, 9)
    except OSError:
        pass


def terminate(proc: subprocess.Popen[bytes], grace_seconds: float = 10.0) -> int:
    """SIGTERM, wait up to `grace_seconds`, then SIGKILL; returns the exit code."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=30)
        return proc.returncode
    finally:
        with _lock:
            _live.discard(proc)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def terminate_all(grace_seconds: float = 5.0) -> None:
    with _lock:
        procs = list(_live)
    for proc in procs:
        terminate(proc, grace_seconds)


atexit.register(terminate_all)
