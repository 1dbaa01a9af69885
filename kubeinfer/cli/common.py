"""Helpers shared by the CLI's sub-apps: one console, errors without tracebacks, a missing extra in one line."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

console = Console(soft_wrap=True)
err_console = Console(stderr=True)

#: Top-level modules of the `operator` extra; a command that needs one without it says what to install.
OPERATOR_EXTRA = frozenset({"kopf", "kubernetes"})
OPERATOR_EXTRA_HINT = "install kubeinfer[operator] for cluster commands (pip install 'kubeinfer[operator]')"


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def missing_extra(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").partition(".")[0] in OPERATOR_EXTRA


class Group(TyperGroup):
    """The root group: a command that needs the `operator` extra without it fails in one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            if not missing_extra(exc):
                raise
            fail(escape(f"{OPERATOR_EXTRA_HINT}; {exc.name} is not installed"))
