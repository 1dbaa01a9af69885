"""Root typer app: `--version`, shell completion, and the sub-apps, one per noun."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from kubeinfer import __version__
from kubeinfer.cli.common import Group

app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    help="Benchmark and serve LLMs, locally or on Kubernetes.",
    epilog="Cluster commands need the operator extra: pip install 'kubeinfer[operator]'. Docs: docs/cli.md",
)

#: (module, attribute, command name, hidden) of each sub-app. Hidden: what the operator's pods run, and
#: `batches`, the old name of `batch` (kept for one release).
SUBCOMMANDS = [
    ("kubeinfer.cli.engine", "app", "engine", False),
    ("kubeinfer.cli.models", "app", "models", False),
    ("kubeinfer.cli.bench", "app", "bench", False),
    ("kubeinfer.cli.gateway", "app", "gateway", False),
    ("kubeinfer.cli.batch", "app", "batch", False),
    ("kubeinfer.cli.workers", "app", "workers", False),
    ("kubeinfer.cli.operator", "app", "operator", False),
    ("kubeinfer.cli.batch", "batches_app", "batches", True),
    ("kubeinfer.steps.app", "app", "step", True),
    ("kubeinfer.steps.app", "cell_app", "cell", True),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kubeinfer {__version__}")
        raise typer.Exit


@app.callback()
def main(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Benchmark and serve LLMs, locally or on Kubernetes."""


for module_name, attribute, command, hidden in SUBCOMMANDS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    app.add_typer(getattr(module, attribute), name=command, hidden=hidden)
