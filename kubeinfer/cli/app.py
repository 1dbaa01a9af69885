"""Root typer app; sub-apps register themselves here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Benchmark and serve LLMs, locally or on Kubernetes."
)

#: (module, attribute, command name, hidden) of each sub-app; hidden ones are for the operator's pods.
SUBCOMMANDS = [
    ("kubeinfer.cli.engine", "app", "engine", False),
    ("kubeinfer.cli.models", "app", "models", False),
    ("kubeinfer.cli.bench", "app", "bench", False),
    ("kubeinfer.cli.gateway", "app", "gateway", False),
    ("kubeinfer.cli.batch", "app", "batch", False),
    ("kubeinfer.cli.workers", "app", "workers", False),
    ("kubeinfer.cli.batches", "app", "batches", False),
    ("kubeinfer.cli.operator", "app", "operator", False),
    ("kubeinfer.steps.app", "app", "step", True),
    ("kubeinfer.steps.app", "cell_app", "cell", True),
]

for module_name, attribute, command, hidden in SUBCOMMANDS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    app.add_typer(getattr(module, attribute), name=command, hidden=hidden)
