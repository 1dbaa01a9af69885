"""Resumable HTTP downloads into the model cache.

A download writes `.<name>.partial` next to its destination and keeps it when the process dies, so the
next attempt (a new pod of the same Job) asks only for the missing bytes with a Range request. The
checksum covers the whole file: the bytes already on disk are hashed again before the transfer goes on.
huggingface_hub resumes within one call only, which is why Hub files come through here too (their URL,
headers and expected checksum are resolved by huggingface_hub, see `kubeinfer.models.hf`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from kubeinfer.models.cache import ChecksumError

#: Called with (bytes done, total bytes or None, bytes per second of this transfer).
Progress = Callable[[int, int | None, float], None]

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(RuntimeError):
    """The transfer failed; the partial file stays for the next attempt unless it was unusable."""


@dataclass(frozen=True)
class Download:
    url: str
    dest: Path
    sha256: str | None = None
    headers: dict[str, str] | None = None

    @property
    def partial(self) -> Path:
        return partial_path(self.dest)


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial")


def download(job: Download, progress: Progress | None = None, timeout: float = 60.0) -> str:
    """Fetch `job.url` into `job.dest`, resuming a partial file; returns the sha256 of the whole file."""
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    partial = job.partial
    digest = hashlib.sha256()
    done = _hash_existing(partial, digest)
    headers = dict(job.headers or {})
    if done:
        headers["Range"] = f"bytes={done}-"
    started, fresh = time.monotonic(), 0
    try:
        with httpx.stream("GET", job.url, headers=headers, follow_redirects=True, timeout=timeout) as response:
            total = _total(response, done)
            if response.status_code == 416 and done:
                pass  # the partial already holds every byte: verify it below
            elif response.status_code == 200 and done:
                done, digest = 0, hashlib.sha256()  # the server ignored the Range header: start over
                partial.unlink(missing_ok=True)
            elif response.status_code not in (200, 206):
                raise DownloadError(f"download of {job.url} failed: HTTP {response.status_code}")
            if response.status_code in (200, 206):
                with partial.open("ab") as out:
                    for block in response.iter_bytes():
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        fresh += len(block)
                        if progress:
                            progress(done, total, fresh / max(time.monotonic() - started, 1e-6))
                    out.flush()
                    os.fsync(out.fileno())
    except httpx.HTTPError as exc:
        raise DownloadError(f"download of {job.url} failed after {done} bytes: {exc}; it resumes from there") from None
    if total is not None and done > total:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"partial download of {job.url} is longer than the file ({done} > {total}); removed")
    if total is not None and done != total:
        raise DownloadError(f"download of {job.url} stopped at {done} of {total} bytes; it resumes from there")
    actual = digest.hexdigest()
    if job.sha256 and actual != job.sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumError(job.url, job.sha256, actual)
    os.replace(partial, job.dest)
    return actual


def _hash_existing(partial: Path, digest: hashlib._Hash) -> int:
    if not partial.is_file():
        return 0
    size = 0
    with partial.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            size += len(block)
    return size


def _total(response: httpx.Response, offset: int) -> int | None:
    """The size of the whole file, from Content-Range (206, 416) or Content-Length (200)."""
    if match := _CONTENT_RANGE.match(response.headers.get("content-range", "")):
        return int(match[3]) if match[3] != "*" else None
    if (match := re.match(r"^bytes \*/(\d+)$", response.headers.get("content-range", ""))) is not None:
        return int(match[1])
    length = response.headers.get("content-length")
    if length is None:
        return None
    return int(length) + (offset if response.status_code == 206 else 0)
