"""`kubeinfer batch`: build batch JSONL from CSV, and submit/wait/download through any OpenAI-compatible API."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeinfer.batch.tools import TemplateError, csv_requests, summarize

if TYPE_CHECKING:
    import openai

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Batch files and jobs (OpenAI Batch API).")

BaseUrl = Annotated[str, typer.Option(envvar="OPENAI_BASE_URL", help="Gateway URL, e.g. http://127.0.0.1:8080/v1")]
ApiKey = Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="API key of your project")]
TERMINAL = ("completed", "failed", "expired", "cancelled")


def _client(base_url: str, api_key: str) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=1)


@contextmanager
def _api_errors() -> Iterator[None]:
    """The gateway's error message and status, instead of a traceback."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        typer.echo(f"error: HTTP {exc.status_code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except openai.APIConnectionError as exc:
        typer.echo(f"error: cannot reach the gateway: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("from-csv")
def from_csv(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row")],
    template: Annotated[str, typer.Option(help="Prompt with {column} placeholders")],
    model: Annotated[str, typer.Option()] = "smollm2-135m",
    system: Annotated[str | None, typer.Option(help="System prompt shared by every request")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    id_column: Annotated[str | None, typer.Option(help="Column to use as custom_id (default row-N)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL file (default stdout)")] = None,
) -> None:
    """Turn each CSV row into one batch request."""
    out = output.open("w") if output else sys.stdout
    count = 0
    try:
        with csv_path.open(newline="") as rows:
            for request in csv_requests(rows, template, model, system, max_tokens, id_column):
                out.write(json.dumps(request, ensure_ascii=False) + "\n")
                count += 1
    except TemplateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if output:
            out.close()
    typer.echo(f"{count} requests", err=True)


@app.command()
def submit(
    input_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    base_url: BaseUrl,
    api_key: ApiKey,
    endpoint: Annotated[str, typer.Option()] = "/v1/chat/completions",
) -> None:
    """Upload a JSONL file and create a batch; prints the batch id."""
    client = _client(base_url, api_key)
    with _api_errors(), input_path.open("rb") as handle:
        file = client.files.create(file=(input_path.name, handle), purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
    typer.echo(batch.id)


@app.command()
def wait(
    batch_id: str,
    base_url: BaseUrl,
    api_key: ApiKey,
    interval: Annotated[float, typer.Option(help="Seconds between polls")] = 2.0,
) -> None:
    """Poll until the batch ends; exit code 1 unless it completed."""
    client = _client(base_url, api_key)
    while True:
        with _api_errors():
            batch = client.batches.retrieve(batch_id)
        counts = batch.request_counts
        done = f"{counts.completed + counts.failed}/{counts.total}" if counts else "?"
        typer.echo(f"{batch.status} {done}", err=True)
        if batch.status in TERMINAL:
            break
        time.sleep(interval)
    if batch.errors and batch.errors.data:
        for error in batch.errors.data:
            typer.echo(f"line {error.line}: {error.code}: {error.message}", err=True)
    raise typer.Exit(0 if batch.status == "completed" else 1)


@app.command()
def download(
    batch_id: str,
    base_url: BaseUrl,
    api_key: ApiKey,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("results.jsonl"),
) -> None:
    """Save the output file (and `<output>.errors.jsonl` when some requests failed)."""
    client = _client(base_url, api_key)
    with _api_errors():
        batch = client.batches.retrieve(batch_id)
        if batch.output_file_id:
            client.files.content(batch.output_file_id).write_to_file(output)
            typer.echo(f"wrote {output}", err=True)
        if batch.error_file_id:
            errors = output.with_suffix(".errors.jsonl")
            client.files.content(batch.error_file_id).write_to_file(errors)
            typer.echo(f"wrote {errors}", err=True)
    if not batch.output_file_id and not batch.error_file_id:
        typer.echo(f"batch {batch_id} has no output ({batch.status})", err=True)
        raise typer.Exit(1)


@app.command()
def analyze(result_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Summarise a downloaded output or error file as JSON."""
    typer.echo(json.dumps(summarize(result_path), indent=2))
