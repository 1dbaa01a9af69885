"""`kubeinfer engine`: build and locate the llama.cpp tools."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kubeinfer.cli.common import console, err_console, fail
from kubeinfer.cli.output import Output, OutputOpt, emit
from kubeinfer.engines.llamacpp_build import SDIST_VERSION, EngineBuildError, build, find_installed
from kubeinfer.engines.supervisor import DEFAULT_INTERVAL_SECONDS, ColdStart, Supervisor, SupervisorError
from kubeinfer.settings import get_settings

app = typer.Typer(
    no_args_is_help=True, help="Build, locate and supervise llama-server, llama-bench and llama-quantize."
)


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
def info(
    output: OutputOpt = Output.table,
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Old spelling of -o json."),
) -> None:
    """Print the installed engine's version and binary paths."""
    installed = find_installed(get_settings().engines_root)
    if installed is None:
        fail(f"llama.cpp {SDIST_VERSION} is not installed for this CPU; run `kubeinfer engine install`")
    data = installed.as_json()

    def table(wide: bool) -> Table:
        shown = Table("FIELD", "VALUE", show_header=False)
        for key in data if wide else ("version", "llama_server", "llama_bench", "llama_quantize"):
            shown.add_row(key, str(data[key]))
        return shown

    emit(Output.json if as_json else output, data, names=[str(data["llama_server"])], table=table)


@app.command(hidden=True)
def serve(
    command: list[str] = typer.Argument(..., metavar="-- ENGINE [ARGS]...", help="The engine command, after `--`."),
    memory_port: int = typer.Option(8081, min=1, max=65535, help="Port of GET /memory."),
    memory_host: str = typer.Option("127.0.0.1", help="Address of GET /memory (0.0.0.0 in a pod)."),
    memory_interval: float = typer.Option(DEFAULT_INTERVAL_SECONDS, min=0.01, help="Seconds between samples."),
    grace_seconds: float = typer.Option(10.0, min=0, help="After SIGTERM, seconds before the engine is killed."),
    health_url: str | None = typer.Option(
        None, help="The engine's health URL: GET /memory then gives load_seconds, start until it answers 200."
    ),
    cold_load: Path | None = typer.Option(
        None,
        help="Evict this model file from the page cache and start the engine on --cold-port first, until healthy, "
        "then stop it: GET /memory gives cold_load_seconds. Needs --health-url.",
    ),
    cold_port: int = typer.Option(8090, min=1, max=65535, help="Port of the cold start (appended as --port N)."),
    cold_timeout: float = typer.Option(600.0, min=1, help="Seconds the cold start may take to get healthy."),
) -> None:
    """Run an engine as a child, serve its memory on GET /memory, exit with its exit code.

    The operator's model server pods run llama-server this way, so the measure Job can read the server's
    peak memory: `kubeinfer engine serve --memory-port 8081 -- llama-server --model ...`. A matrix's server
    pods also time a cold and a warm load (`--cold-load`, `--health-url`).
    """
    try:
        supervisor = Supervisor(
            command,
            memory_port,
            memory_host,
            memory_interval,
            grace_seconds,
            log=lambda message: err_console.print(
                f"kubeinfer engine serve: {message}", highlight=False, markup=False, soft_wrap=True
            ),
            health_url=health_url,
            cold_start=ColdStart(cold_load, cold_port, cold_timeout) if cold_load else None,
        )
        code = supervisor.run()
    except SupervisorError as exc:
        fail(str(exc), exc.exit_code)
    raise typer.Exit(code)
