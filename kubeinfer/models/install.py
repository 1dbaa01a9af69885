"""Install a ModelInstall's files into the model cache: fetch (resumable), verify, derive, size.

Used by `kubeinfer models install` on one machine and by the operator's install Job in a cluster; the
result is plain data the operator copies into the resource's status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubeinfer.models.cache import CachedModel, copy_verified
from kubeinfer.models.sizing import estimate_memory, read_geometry
from kubeinfer.models.sources import ModelFetchError, ModelResolver, parse_source
from kubeinfer.resources.model_install import ModelInstallSpec

#: Where a `pvc` source's claim is mounted in the install Job.
SOURCE_MOUNT = "/source"


@dataclass(frozen=True)
class InstalledFile:
    quantization: str
    path: str
    sha256: str
    size_bytes: int
    source: str


@dataclass(frozen=True)
class InstallResult:
    files: list[InstalledFile]
    sizing: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self.files], "sizing": self.sizing}


def install(
    model: str, spec: ModelInstallSpec, resolver: ModelResolver, source_mount: str = SOURCE_MOUNT
) -> InstallResult:
    """Fetch the source quantization, derive `quantize`, and size the one that will be served.

    Raises what the resolver raises (ModelFetchError, ChecksumError, QuantizeError) and SizingError.
    """
    files = spec.files(source_mount)
    if spec.source.pvc is not None:
        base = _copy_into_cache(model, spec.quantization, files[spec.quantization], resolver)
    else:
        base = resolver.resolve(model, spec.quantization, files)
    cached: list[CachedModel] = [base, *(resolver.resolve(model, quant, files) for quant in spec.quantize)]
    root = resolver.cache.root
    installed = [
        InstalledFile(c.quantization, _relative(c.path, root), c.sha256, c.size_bytes, c.source) for c in cached
    ]
    serving = spec.serving
    chosen = serving_order(spec, {c.quantization: c.size_bytes for c in cached})[0]
    path = next(c.path for c in cached if c.quantization == chosen)
    ctx_size, parallel = (serving.ctx_size, serving.parallel) if serving else (4096, 1)
    geometry = read_geometry(path)
    estimate = estimate_memory(geometry, ctx_size=ctx_size, parallel=parallel)
    sizing = {
        "quantization": chosen,
        "ctxSize": ctx_size,
        "parallel": parallel,
        "weightsBytes": estimate.weights_bytes,
        "kvCacheBytes": estimate.kv_cache_bytes,
        "estimatedBytes": estimate.total_bytes,
        "layers": geometry.block_count,
        "contextLength": geometry.context_length,
    }
    return InstallResult(installed, sizing)


def _copy_into_cache(model: str, quantization: str, source: str, resolver: ModelResolver) -> CachedModel:
    """A file on another claim is copied (checksummed) into the cache, where the servers mount it, once."""
    ref = parse_source(source)
    path = Path(ref.target)
    cache = resolver.cache
    with cache.lock(model):
        if not path.is_file():
            raise ModelFetchError(f"model file not found on the source claim: {path}")
        stat = path.stat()
        provenance = f"{source.partition('#')[0]}#size={stat.st_size},mtime={stat.st_mtime_ns}"
        if (found := cache.get(model, quantization, provenance)) is not None:
            return found
        with path.open("rb") as handle:
            digest = copy_verified(handle, cache.path_for(model, quantization), ref.sha256, str(path))
        return cache.record(model, quantization, provenance, digest)


def serving_order(spec: ModelInstallSpec, sizes: dict[str, int]) -> list[str]:
    """Quantizations to serve, first choice first, then each next smaller one: the OOM fallback order.

    The first choice is `serving.quantization`, else the largest file; the rest follow by size, largest first,
    leaving out anything larger than the first choice (falling back never grows the model).
    """
    by_size = sorted(sizes, key=lambda q: (-sizes[q], q))
    first = spec.serving.quantization if spec.serving and spec.serving.quantization else by_size[0]
    return [first, *[q for q in by_size if q != first and sizes[q] <= sizes[first]]]


def remove_partials(root: Path, model: str) -> list[Path]:
    """Delete unfinished downloads of `model` (a cancelled install); finished files stay for others."""
    removed = []
    for partial in sorted((root / model).glob(".*.partial")):
        partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
