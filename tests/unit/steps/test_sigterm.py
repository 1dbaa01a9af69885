"""A step run as its container's PID 1 ends on SIGTERM, the kubelet's stop, instead of waiting for SIGKILL.

The PID 1 is real: `unshare --pid --fork` starts the process as the first of a new PID namespace, where, as in a
container, the kernel drops a SIGTERM the process does not handle. On kind a deleted step pod took 33 s to go (the
30 s grace period, then SIGKILL) before the step group installed its handler. unshare needs root, which `make test`
has here; elsewhere these tests are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from kubeinfer.cli.app import app as cli
from kubeinfer.steps.app import _exit_on_signal

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="a new PID namespace needs root and unshare"
)

HANDLED = "from kubeinfer.steps.app import exit_on_sigterm; exit_on_sigterm(); "
SLEEP = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"


def as_pid_1(code: str) -> subprocess.Popen[str]:
    """`python -c code` as PID 1 of a new PID namespace; returns once it printed its PID (1)."""
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "1"
    return proc


def child_of(proc: subprocess.Popen[str]) -> int:
    """The PID, in this namespace, of unshare's forked child: the process that is PID 1 inside."""
    children = f"/proc/{proc.pid}/task/{proc.pid}/children"
    return int(open(children).read().split()[0])  # noqa: PTH123, SIM115


def test_pid_1_without_a_handler_ignores_sigterm() -> None:
    """The premise: what a step pod did before."""
    proc = as_pid_1(SLEEP)
    try:
        os.kill(child_of(proc), signal.SIGTERM)
        time.sleep(1)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_pid_1_with_the_step_handler_exits_143_on_sigterm() -> None:
    proc = as_pid_1(HANDLED + SLEEP)
    try:
        os.kill(child_of(proc), signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()


@pytest.mark.parametrize("group", ["step", "cell"])
def test_running_a_step_installs_the_handler_first(group: str) -> None:
    """The group's callback runs before the step's own options are read, so `--help` is enough to see it."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(cli, [group, "prepare", "--help"])
        assert result.exit_code == 0, result.output
        assert signal.getsignal(signal.SIGTERM) is _exit_on_signal
    finally:
        signal.signal(signal.SIGTERM, before)
