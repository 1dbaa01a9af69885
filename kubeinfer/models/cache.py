"""The model cache on disk: one folder per model, one GGUF per quantization, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubeinfer.filelock import exclusive


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ChecksumError(ValueError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def copy_verified(source: Readable, dest: Path, expected_sha256: str | None, what: str) -> str:
    """Stream `source` into `dest` through a temporary file; `dest` appears only if the checksum holds.

    A read that fails half-way (a corrupt archive member, a full disk) removes the temporary file too.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            while block := source.read(1 << 20):
                digest.update(block)
                out.write(block)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if expected_sha256 and actual != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(what, expected_sha256, actual)
    os.replace(tmp, dest)
    return actual


@dataclass(frozen=True)
class CachedModel:
    model: str
    quantization: str
    path: Path
    sha256: str
    size_bytes: int
    source: str


class ModelCache:
    """`<root>/<model>/<model>.<quant>.gguf` with a JSON sidecar recording source and checksum."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, model: str, quantization: str) -> Path:
        return self.root / model / f"{model}.{quantization}.gguf"

    def _sidecar(self, path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def get(self, model: str, quantization: str, source: str | None = None) -> CachedModel | None:
        """The cached file, unless it is missing, truncated, or was made from another source than `source`."""
        path = self.path_for(model, quantization)
        sidecar = self._sidecar(path)
        if not path.is_file() or not sidecar.is_file():
            return None
        meta = json.loads(sidecar.read_text())
        if meta.get("size_bytes") != path.stat().st_size:
            return None
        if source is not None and meta.get("source") != source:
            return None
        return CachedModel(model, quantization, path, meta["sha256"], meta["size_bytes"], meta["source"])

    def record(self, model: str, quantization: str, source: str, sha256: str | None = None) -> CachedModel:
        path = self.path_for(model, quantization)
        digest = sha256 or sha256_file(path)
        size = path.stat().st_size
        meta = {"sha256": digest, "size_bytes": size, "source": source}
        sidecar = self._sidecar(path)
        tmp = sidecar.with_name(f".{sidecar.name}.partial")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, sidecar)
        return CachedModel(model, quantization, path, digest, size, source)

    def list(self) -> list[CachedModel]:
        found = []
        for sidecar in sorted(self.root.glob("*/*.gguf.json")):
            model = sidecar.parent.name
            quant = sidecar.name.removeprefix(f"{model}.").removesuffix(".gguf.json")
            if (cached := self.get(model, quant)) is not None:
                found.append(cached)
        return found

    def lock(self, model: str) -> AbstractContextManager[None]:
        """Serialises fetches of one model across processes, so the same model is fetched once."""
        return exclusive(self.root / model / ".lock")
