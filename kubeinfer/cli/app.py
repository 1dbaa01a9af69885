"""Root typer app; sub-apps register themselves here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Benchmark and serve LLMs, locally or on Kubernetes."
)

#: (module, command name) of each sub-app; a module exposes `app: typer.Typer`.
SUBCOMMANDS = [
    ("kubeinfer.cli.engine", "engine"),
    ("kubeinfer.cli.models", "models"),
    ("kubeinfer.cli.bench", "bench"),
    ("kubeinfer.cli.gateway", "gateway"),
    ("kubeinfer.cli.batch", "batch"),
    ("kubeinfer.cli.workers", "workers"),
    ("kubeinfer.cli.batches", "batches"),
    ("kubeinfer.cli.operator", "operator"),
    ("kubeinfer.cli.cell", "cell"),
]

for module_name, command in SUBCOMMANDS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    app.add_typer(module.app, name=command)
