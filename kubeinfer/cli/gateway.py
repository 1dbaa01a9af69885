"""`kubeinfer gateway serve`: the OpenAI-compatible gateway on a local llama-server; `openapi`: its API document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="OpenAI-compatible files, batches and inference.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    model: Annotated[str, typer.Option(help="Model to serve (catalog name)")] = "smollm2-135m",
    model_path: Annotated[Path | None, typer.Option(help="Serve this GGUF under --model's name")] = None,
    engine_url: Annotated[
        str | None, typer.Option(help="Use this running llama-server instead of starting one")
    ] = None,
    parallel: Annotated[int | None, typer.Option(help="Slots of the managed llama-server")] = None,
    ctx_size: Annotated[int | None, typer.Option(help="Context of the managed llama-server")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Files and metadata directory")] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Serve without API keys (every caller shares one project)")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve /v1/files, /v1/batches, /v1/chat/completions, /v1/completions, /v1/models and /v1/jobs.

    API keys come from KUBEINFER_GATEWAY__API_KEYS="key1=projectA,key2=projectB" (or _API_KEYS_FILE).
    """
    from kubeinfer.gateway.auth import NoApiKeysError
    from kubeinfer.gateway.server import serve as run
    from kubeinfer.gateway.server import settings_with

    settings = settings_with(
        model=model,
        model_path=model_path,
        engine_url=engine_url,
        parallel=parallel,
        ctx_size=ctx_size,
        data_dir=data_dir,
    )
    try:
        run(settings, host, port, insecure_no_auth, log_level)
    except NoApiKeysError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document, built from the app's routes and models (no server is started)."""
    from kubeinfer.gateway.app import create_app
    from kubeinfer.settings import Settings

    # The document comes from the routes alone; keys and an engine would matter only once it serves.
    app = create_app(Settings(), insecure_no_auth=True, engine_url="http://127.0.0.1:1")
    document: dict[str, Any] = app.openapi()
    return document


@app.command()
def openapi(
    out_file: Annotated[Path | None, typer.Option("--out-file", "-O", help="Write here (default stdout)")] = None,
) -> None:
    """Print the gateway's OpenAPI document (docs/openapi.json is this, checked by a test)."""
    text = json.dumps(openapi_document(), indent=2, sort_keys=False) + "\n"
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text)
        typer.echo(f"wrote {out_file}", err=True)
