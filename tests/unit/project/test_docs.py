"""The docs match the CLI: every `kubeinfer ...` command in README.md and docs/ names a real command and real flags.

The README's local commands are also run for real, in tests/engine/test_readme.py; this tier checks every
command the docs show (cluster ones too) against the command tree, in milliseconds.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from kubeinfer.cli.app import app
from kubeinfer.cli.output import FORMATS

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:bash|console|sh)?\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(kubeinfer [^`]+)`")
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _commands_in_block(block: str) -> list[str]:
    found = []
    for raw in block.splitlines():
        line = raw.strip().removeprefix("$ ")
        line = re.sub(r"\s+#\s.*$", "", line).rstrip(" &")
        for part in re.split(r"\s*(?:&&|\|\||;)\s*", line):
            words = part.split()
            while words and ENV.match(words[0]):
                words.pop(0)
            if words and words[0] == "kubeinfer":
                found.append(" ".join(words))
    return found


def _documented() -> list[tuple[str, str]]:
    """(where, command) for each command in a code block, and each inline one that is a plain command line."""
    commands = []
    for path in DOCS:
        text = path.read_text()
        where = path.relative_to(ROOT).as_posix()
        for block in FENCE.findall(text):
            commands += [(where, command) for command in _commands_in_block(block)]
        for inline in INLINE.findall(text):
            # Synopses with [optional] parts, alternatives or ellipses are read as prose, not run.
            if not re.search(r"[\[\]|…<>{}]|\.\.\.", inline.replace("{review}", "")):
                commands.append((where, inline))
    return commands


def _resolve(words: list[str]) -> tuple[Any, list[str], bool]:
    """The command the words name, the words after its path, and whether a group or command on it is hidden."""
    command: Any = typer.main.get_command(app)
    rest = list(words[1:])
    hidden = False
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"no command `{name}` under `{command.name or 'kubeinfer'}`"
        command = command.commands[name]
        hidden = hidden or bool(command.hidden)
    return command, rest, hidden


def _flags(command: Any) -> set[str]:
    flags = {"--help"}
    for param in command.params:
        if not getattr(param, "hidden", False):  # old spellings work, but the docs show the current ones
            flags |= set(getattr(param, "opts", [])) | set(getattr(param, "secondary_opts", []))
    return {flag for flag in flags if flag.startswith("-")}


DOCUMENTED = _documented()


def test_the_docs_show_commands() -> None:
    assert len(DOCUMENTED) > 40
    assert {where for where, _ in DOCUMENTED} >= {"README.md", "docs/cli.md", "docs/operations.md"}


@pytest.mark.parametrize(("where", "command"), DOCUMENTED, ids=[f"{w}: {c}" for w, c in DOCUMENTED])
def test_documented_command_exists_with_its_flags(where: str, command: str) -> None:
    words = shlex.split(command.replace(" -- ", " "))
    resolved, rest, hidden = _resolve(words)
    # docs/ names the hidden ones where it explains them (old spellings, what the operator's pods run).
    if where == "README.md":
        assert not hidden, f"{where}: `{command}` uses a hidden command"
    known = _flags(resolved)
    for index, word in enumerate(rest):
        if word.startswith("-") and not re.fullmatch(r"-\d+", word):
            flag = word.split("=", 1)[0]
            assert flag in known, f"{where}: `{command}`: no flag {flag} (it has {sorted(known)})"
            if flag in ("-o", "--output") and index + 1 < len(rest):
                assert rest[index + 1] in FORMATS, f"{where}: `{command}`: -o takes a format, not {rest[index + 1]}"


def test_files_the_readme_uses_ship_in_examples() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in set(re.findall(r"examples/[\w.-]+", readme)):
        assert (ROOT / name).is_file(), f"README.md uses {name}, which does not exist"


def test_ids_are_shown_as_the_gateway_makes_them() -> None:
    """Batch ids are `batch-<hex>` (kubeinfer.storage.records); docs once showed `batch_...`."""
    for path in DOCS:
        assert not re.search(r"\bbatch_(?:\.\.\.|[0-9a-f]{4})", path.read_text()), path
