"""`kubeinfer bench`: run a BenchmarkMatrix manifest on this machine."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from kubeinfer import __version__
from kubeinfer.bench.checkpoint import CheckpointMismatchError
from kubeinfer.bench.hardware import describe_host
from kubeinfer.bench.load.records import write_cell_records
from kubeinfer.bench.local import LocalExecutor
from kubeinfer.bench.planner import PlanError, PlannedCell, plan
from kubeinfer.bench.report import FORMATS, as_report_data, write_reports
from kubeinfer.bench.runner import MatrixOutcome, MatrixRunner, RunEvents
from kubeinfer.cli.bench_diff import diff
from kubeinfer.cli.common import console, err_console, fail
from kubeinfer.cli.output import Output, OutputOpt, emit, format_or_path
from kubeinfer.engines.llamacpp_build import EngineBuildError, EngineInstall, build
from kubeinfer.kube.record_maps import AssembledRecords
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.catalog import UnknownModelError
from kubeinfer.models.sources import ModelFetchError, ModelResolver, describe
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellResult
from kubeinfer.resources.loader import ManifestError, load_matrix
from kubeinfer.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Sweep models x quantizations x use-case profiles.")

STATUS_STYLE = {
    "passed": "green",
    "partial": "yellow",
    "failed": "red",
    "skipped": "dim",
    "error": "magenta",
    "pending": "dim",
    "running": "cyan",
}


def _status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _load(manifest: Path) -> BenchmarkMatrix:
    try:
        matrix = load_matrix(manifest)
        plan(matrix.spec)
    except (ManifestError, PlanError) as exc:
        fail(str(exc))
    return matrix


@app.command()
def validate(manifest: Path = typer.Argument(..., help="BenchmarkMatrix YAML.")) -> None:
    """Check a manifest against the schema and print its plan: the cells and their profiles. Nothing runs."""
    matrix = _load(manifest)
    cells = plan(matrix.spec)
    table = Table("#", "cell", "profiles", title=f"plan for {matrix.metadata.name}")
    for index, cell in enumerate(cells, start=1):
        table.add_row(str(index), cell.key, ", ".join(matrix.spec.profiles.enabled()))
    console.print(table)
    console.print(f"{manifest}: valid BenchmarkMatrix '{matrix.metadata.name}', {len(cells)} cells")


def _print_plan(matrix: BenchmarkMatrix, cells: list[PlannedCell], out_dir: Path) -> None:
    cache = ModelCache(get_settings().models_root)
    table = Table("#", "cell", "profiles", "model file", title=f"plan for {matrix.metadata.name}")
    for index, cell in enumerate(cells, start=1):
        cached = cache.get(cell.model.name, cell.quantization)
        try:
            fetch = "cached" if cached else describe(cell.model.files[cell.quantization])
        except (ModelFetchError, UnknownModelError) as exc:
            fetch = f"[red]{exc}[/]"
        table.add_row(str(index), cell.key, ", ".join(matrix.spec.profiles.enabled()), fetch)
    console.print(table)
    console.print(f"results would be written to {out_dir}")


def _engine(log: Callable[[str], None]) -> EngineInstall:
    try:
        return build(get_settings().engines_root, log=log)
    except EngineBuildError as exc:
        fail(str(exc))


def _install_sigterm_as_interrupt(stop: threading.Event) -> None:
    """`kill PID` checkpoints like Ctrl-C does; Ctrl-C itself raises at once, wherever the run is, and sets
    `stop`, which the runner and the clients check, for when the raise is lost in a finaliser (runner.py).

    With Python's default SIGINT handler in place, `asyncio.run` swaps in its own, which only cancels the
    running task; a profile that absorbs that cancellation would let the run go on and exit 0 (seen once in
    CI). A handler of our own is left alone by asyncio, so the interrupt reaches the runner's checkpoint.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _summary_table(cells: list[CellResult]) -> Table:
    table = Table(title="results")
    table.add_column("cell", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("tokens/s", justify="right", no_wrap=True)
    table.add_column("TTFT s", justify="right", no_wrap=True)
    table.add_column("rating", no_wrap=True)
    table.add_column("load s\ncold/warm", justify="right", no_wrap=True)
    currencies = sorted({cell.currency or "" for cell in cells if cell.cost_per_million_output_tokens is not None})
    if currencies:
        table.add_column(f"{'/'.join(currencies)}/1M tok\nout/in", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for cell in cells:
        interactive = cell.profiles.get("interactive")
        metrics = interactive.metrics if interactive else {}
        tps, ttft = metrics.get("tokens_per_second"), metrics.get("ttft_seconds")
        cost = [_cost(cell.cost_per_million_output_tokens, cell.cost_per_million_input_tokens)] if currencies else []
        table.add_row(
            Text(cell.key),
            _status_text(cell.status.value),
            f"{tps:.1f}" if isinstance(tps, int | float) else "-",
            f"{ttft:.3f}" if isinstance(ttft, int | float) else "-",
            (interactive.rating or "-") if interactive else "-",
            f"{_seconds(cell.cold_load_seconds)}/{_seconds(cell.load_seconds)}",
            *cost,
            Text(((f"{cell.rule.value}: " if cell.rule else "") + (cell.reason or ""))[:80]),
        )
    return table


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _cost(output: float | None, input_: float | None) -> str:
    """Costs to three significant digits: a small model's 1M tokens may cost a fraction of a cent."""
    return "/".join(f"{value:.3g}" if value is not None else "-" for value in (output, input_))


def build_report(matrix: BenchmarkMatrix, outcome: MatrixOutcome, engine: EngineInstall) -> dict[str, Any]:
    return {
        "metadata": {
            "name": matrix.metadata.name,
            "timestamp": datetime.now(UTC).isoformat(),
            **describe_host(),
            "config": matrix.spec.to_manifest(),
            "test_duration_seconds": outcome.elapsed_seconds,
            "kubeinfer_version": __version__,
            "engine": {
                "name": "llama.cpp",
                "version": engine.version,
                "llama_server": str(engine.llama_server),
            },
            "complete": not outcome.interrupted,
            "stress_cell": outcome.stress_cell,
        },
        "results": [cell.model_dump(mode="json", by_alias=False) for cell in outcome.cells],
        "recommendations": outcome.recommendations,
        "best": outcome.best,
    }


OutDir = Annotated[Path | None, typer.Option("--out-dir", help="Results folder (default results/<name>).")]
FormatOrOldDir = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table (default), wide, json or yaml: the report on stdout; name: the cell keys",
    ),
]


def _print_outcome(
    output: Output, data: dict[str, Any], cells: list[CellResult], best: str | None, lines: list[str]
) -> None:
    """The summary as a table with the report files, or the report document as JSON/YAML."""

    def table(_wide: bool) -> Group:
        parts: list[Any] = [_summary_table(cells)]
        if best:
            parts.append(f"overall best: [bold]{best}[/]")
        return Group(*parts, *lines)

    emit(output, data, names=[cell.key for cell in cells], table=table)


@app.command()
def run(
    manifest: Path = typer.Argument(..., help="BenchmarkMatrix YAML (the same file `kubectl apply` takes)."),
    out_dir_opt: OutDir = None,
    output_opt: FormatOrOldDir = None,
    resume: bool = typer.Option(False, help="Continue an interrupted run from its checkpoint."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and what would be fetched; run nothing."),
) -> None:
    """Run the matrix on this machine with real llama-server processes; write JSON, CSV and HTML reports."""
    output, old_dir = format_or_path(output_opt, "--out-dir")
    matrix = _load(manifest)
    out_dir = out_dir_opt or old_dir or Path("results") / matrix.metadata.name
    cells = plan(matrix.spec)
    if dry_run:
        _print_plan(matrix, cells, out_dir)
        return
    # The report goes to stdout with -o json/yaml/name, so progress and messages then go to stderr.
    shown = console if output in (Output.table, Output.wide) else err_console
    engine = _engine(shown.print)
    resolver = ModelResolver(ModelCache(get_settings().models_root), engine.llama_quantize, log=shown.print)
    executor = LocalExecutor(engine, resolver, out_dir)
    _install_sigterm_as_interrupt(executor.stop)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=shown,
        transient=False,
    ) as progress:
        task = progress.add_task(matrix.metadata.name, total=len(cells))
        executor.log = lambda message: progress.update(task, description=message)

        def finished(result: CellResult, index: int, _total: int) -> None:
            why = f" ({result.rule.value if result.rule else result.reason or ''})" if result.status != "passed" else ""
            line = Text(f"{result.key}: ") + _status_text(result.status.value) + Text(why[:120])
            progress.console.print(line)
            progress.update(task, completed=index)

        events = RunEvents(cell_finished=finished, message=lambda m: progress.console.print(Text(m)))
        try:
            outcome = MatrixRunner(matrix, executor, out_dir, events, executor.stop).run(resume=resume)
        except CheckpointMismatchError as exc:
            fail(str(exc))
    report_data = build_report(matrix, outcome, engine)
    written = write_reports(report_data, out_dir, ["json", "csv", "html"])
    lines = [f"{fmt} report: {path}" for fmt, path in written.items()]
    _print_outcome(output, report_data, outcome.cells, outcome.best, lines)
    if outcome.interrupted:
        err_console.print(
            f"[yellow]interrupted[/]: finished cells are checkpointed; continue with "
            f"`kubeinfer bench run {manifest} --out-dir {out_dir} --resume`"
        )
        raise typer.Exit(130)


@app.command()
def show(
    report: Path = typer.Argument(..., help="A report.json written by `bench run`."),
    output: OutputOpt = Output.table,
) -> None:
    """Print the summary of a finished run."""
    try:
        data = json.loads(report.read_text())
        cells = [CellResult.model_validate(item) for item in data["results"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{report}: not a kubeinfer report ({exc})")
    _print_outcome(output, data, cells, data.get("best"), [])


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"
    all = "all"


@app.command()
def report(
    name: str = typer.Argument(..., help="BenchmarkMatrix name."),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Default: the kubeconfig context's namespace, else default."
    ),
    context: str | None = typer.Option(None, help="Kubeconfig context (default: the current one)."),
    kubeconfig: Path | None = typer.Option(None, help="Default: $KUBECONFIG, ~/.kube/config, or in-cluster."),
    out_dir_opt: OutDir = None,
    output_opt: FormatOrOldDir = None,
    fmt: ReportFormat = typer.Option(ReportFormat.all, "--format", help="Which report file(s) to write."),
) -> None:
    """Fetch the report of a matrix the operator finished; write the files `bench run` writes.

    With the default `--format all` that includes every request the cells sent, `requests/*.jsonl`.

    The report comes from its ConfigMap, or, when it was too large for one, from the store the operator put
    it in (the data directory or the S3 bucket of this machine's KUBEINFER_STORAGE__* settings).
    """
    from kubeinfer.cluster.matrices import fetch_report
    from kubeinfer.kube.errors import ClusterError, NoConfiguration

    output, old_dir = format_or_path(output_opt, "--out-dir")
    try:
        fetched = fetch_report(name, namespace, kubeconfig, context, with_records=fmt == ReportFormat.all)
    except NoConfiguration as exc:
        fail(escape(f"{exc}; pass --kubeconfig or set KUBECONFIG" if kubeconfig is None else str(exc)))
    except ClusterError as exc:
        fail(escape(str(exc)))
    source = fetched.source
    try:
        data = as_report_data(fetched.report)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        fail(escape(f"{source}: not a kubeinfer report ({exc.title} {where}: {first['msg']})"))
    except (ValueError, TypeError) as exc:
        fail(escape(f"{source}: not a kubeinfer report ({exc})"))
    out_dir = out_dir_opt or old_dir or Path("results") / name
    try:
        written = write_reports(data, out_dir, FORMATS if fmt == ReportFormat.all else [fmt.value])
    except OSError as exc:
        fail(escape(f"cannot write the report to {out_dir}: {exc}"))
    lines = [f"report of benchmarkmatrix {name} from {source}"]
    lines += [f"{kind} report: {path}" for kind, path in written.items()]
    if fetched.records is not None:
        lines += _write_records(fetched.records, out_dir / "requests")
    _print_outcome(output, fetched.report, data.cells, data.extra.get("best"), lines)


def _write_records(found: AssembledRecords, directory: Path) -> list[str]:
    """Write every cell's per-request records that came back whole; a line for what was and what was not."""
    problems = list(found.problems)
    written = 0
    for cell, blobs in found.blobs.items():
        try:
            written += write_cell_records(directory, cell, blobs)
        except (ValueError, OSError) as exc:
            problems.append(str(exc))
    lines = [f"request records: {directory} ({written} requests)"] if written else []
    if not found.blobs and not problems:
        lines.append("request records: none kept in the cluster for this matrix")
    return lines + [escape(f"request records not written: {problem}") for problem in problems]


app.command()(diff)

__all__ = ["app", "build_report", "ModelFetchError"]
