"""The hidden `kubeinfer step` group: one command per step the operator's pods run (never typed by a user)."""

from __future__ import annotations

import typer

from kubeinfer.steps import batch, cell, install

app = typer.Typer(no_args_is_help=True, help="Steps run inside the pods the operator creates.")
app.command("prepare")(cell.prepare)
app.command("measure")(cell.measure)
app.command("install")(install.install)
app.command("validate")(batch.validate)
app.command("shard")(batch.shard)
app.command("merge")(batch.merge)
app.command("clean")(batch.clean)

#: `kubeinfer cell prepare|measure`, as runner Jobs created before the `step` group was named still call them.
cell_app = typer.Typer(no_args_is_help=True, help="Steps of one matrix cell (now `kubeinfer step`).")
cell_app.command("prepare")(cell.prepare)
cell_app.command("measure")(cell.measure)
