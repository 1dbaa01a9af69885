"""`-o/--output FORMAT`, the one meaning of `-o` in every command: table, wide, json, yaml or name.

JSON and YAML are the documented, stable shapes for scripts (docs/cli.md); `name` prints one id per line,
as `kubectl get -o name` does. Files and folders are never `-o`: they are `-O FILE` and `--out-dir DIR`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import RenderableType

from kubeinfer.cli.common import console, err_console


class Output(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, wide, json, yaml, or name (one id per line)")]
FORMATS = frozenset(item.value for item in Output)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    typer.echo(json.dumps(data, indent=2))


def print_yaml(data: Any) -> None:
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


def emit(
    output: Output,
    data: Any,
    *,
    names: Sequence[str],
    table: Callable[[bool], RenderableType],
) -> None:
    """Print `data` in the chosen format; `table(wide)` builds the human view, `names` the `-o name` lines."""
    if output is Output.json:
        print_json(data)
    elif output is Output.yaml:
        print_yaml(data)
    elif output is Output.name:
        for name in names:
            typer.echo(name)
    else:
        console.print(table(output is Output.wide))


def format_or_path(value: str | None, new_flag: str) -> tuple[Output, Path | None]:
    """`-o` given a format, or (the old meaning, kept for scripts) a file or folder, with a note on stderr.

    Before the flags were made consistent `-o` named a folder or a file in some commands; a value that is
    not a format name is still taken as one, so such scripts keep working.
    """
    if value is None:
        return Output.table, None
    if value in FORMATS:
        return Output(value), None
    err_console.print(
        f"note: -o/--output is the output format now; use {new_flag} {value}", highlight=False, markup=False
    )
    return Output.table, Path(value)
