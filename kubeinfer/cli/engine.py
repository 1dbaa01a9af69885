"""`kubeinfer engine`: build and locate the llama.cpp tools."""

from __future__ import annotations

import json

import typer

from kubeinfer.cli.common import console, fail
from kubeinfer.engines.llamacpp_build import SDIST_VERSION, EngineBuildError, build, find_installed
from kubeinfer.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Build and locate llama-server, llama-bench and llama-quantize.")


@app.command()
def install(
    force: bool = typer.Option(False, help="Rebuild even if a matching build is cached."),
    jobs: int = typer.Option(0, help="Parallel compile jobs (0: one per CPU)."),
) -> None:
    """Build llama.cpp from the sources inside the llama-cpp-python sdist (cached by version)."""
    settings = get_settings()
    try:
        installed = build(settings.engines_root, jobs=jobs or settings.build_jobs, log=console.print, force=force)
    except EngineBuildError as exc:
        fail(str(exc))
    console.print(f"llama-server ready: {installed.llama_server}")


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the installed engine's version and binary paths."""
    installed = find_installed(get_settings().engines_root)
    if installed is None:
        fail(f"llama.cpp {SDIST_VERSION} is not installed for this CPU; run `kubeinfer engine install`")
    data = installed.as_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key in ("version", "llama_server", "llama_bench", "llama_quantize"):
        console.print(f"{key:15} {data[key]}")
