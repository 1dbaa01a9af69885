"""The hidden `kubeinfer step` group: one command per step the operator's pods run (never typed by a user)."""

from __future__ import annotations

import signal
from types import FrameType

import typer

from kubeinfer.steps import batch, cell, install


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM end this process (exit code 143), as the kubelet's stop of a pod expects.

    A step runs as its container's PID 1, and the kernel gives PID 1 no default action for SIGTERM: without a
    handler a deleted pod ignored it and the kubelet waited out the grace period (30 s) before SIGKILL, so every
    cancelled batch, deleted BatchJob or ModelInstall and replaced worker waited that long. A step's finished work is
    already on disk (shard lines as they are answered, downloads as `.partial` files), so stopping at once loses
    nothing that the SIGKILL would have kept.
    """
    signal.signal(signal.SIGTERM, _exit_on_signal)


app = typer.Typer(
    no_args_is_help=True, help="Steps run inside the pods the operator creates.", callback=exit_on_sigterm
)
app.command("prepare")(cell.prepare)
app.command("measure")(cell.measure)
app.command("install")(install.install)
app.command("validate")(batch.validate)
app.command("shard")(batch.shard)
app.command("merge")(batch.merge)
app.command("clean")(batch.clean)

#: `kubeinfer cell prepare|measure`, as runner Jobs created before the `step` group was named still call them.
cell_app = typer.Typer(
    no_args_is_help=True, help="Steps of one matrix cell (now `kubeinfer step`).", callback=exit_on_sigterm
)
cell_app.command("prepare")(cell.prepare)
cell_app.command("measure")(cell.measure)
