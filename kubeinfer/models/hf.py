"""Fetch model files from a Hugging Face Hub endpoint through huggingface_hub, with clear errors."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

#: Called with (bytes done, total bytes or None) as a download progresses.
Progress = Callable[[int, int | None], None]

DEFAULT_ENDPOINT = "https://huggingface.co"


class ModelFetchError(RuntimeError):
    """A model file could not be fetched; the message names the source and the cause."""


def parse_hf_uri(uri: str) -> tuple[str, str, str | None]:
    """Split `hf://org/repo/path/file.gguf[@revision]` (or `hf://org/repo@revision/path`) into its parts."""
    if not uri.startswith("hf://"):
        raise ModelFetchError(f"{uri}: not an hf:// source")
    parts = uri[len("hf://") :].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise ModelFetchError(f"{uri}: expected hf://<org>/<repo>/<file>[@revision]")
    org, repo, filename = parts
    revision: str | None = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    elif "@" in filename:
        filename, revision = filename.rsplit("@", 1)
    if not repo or not filename or revision == "":
        raise ModelFetchError(f"{uri}: expected hf://<org>/<repo>/<file>[@revision]")
    return f"{org}/{repo}", filename, unquote(revision) if revision else None


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now: huggingface_hub reads it once at import, which tests and callers outlive."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class HubFile:
    """Where a Hub file is and what it should be: enough for a resumable download of our own."""

    url: str
    headers: dict[str, str]
    sha256: str | None
    size: int | None
    commit: str | None


def resolve_hf(repo_id: str, filename: str, revision: str | None = None, token: str | None = None) -> HubFile:
    """Ask the Hub (through huggingface_hub, with its token handling) for a file's URL, size and checksum.

    An LFS file's ETag is its sha256, so the download can be verified end to end.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils._headers import build_hf_headers

    endpoint = hub_endpoint()
    source = f"hf://{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    except Exception as exc:
        raise ModelFetchError(f"{source}: {_describe(exc, endpoint)}") from exc
    etag = (meta.etag or "").strip('"')
    sha256 = etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None
    return HubFile(url, dict(build_hf_headers(token=token)), sha256, meta.size, meta.commit_hash)


def fetch_hf(
    repo_id: str,
    filename: str,
    cache_dir: Path,
    revision: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download (or find in `cache_dir`, huggingface_hub's cache layout) one file of a model repository.

    huggingface_hub resumes a transfer cut mid-way with a Range request (up to five times in a row
    while bytes keep arriving) and verifies the size; `token=None` falls back to HF_TOKEN or the
    stored login. Every failure becomes a ModelFetchError naming the repository and file.
    """
    from huggingface_hub import hf_hub_download

    endpoint = hub_endpoint()
    source = f"hf://{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
            tqdm_class=_progress_class(progress) if progress else None,
        )
    except Exception as exc:
        raise ModelFetchError(f"{source}: {_describe(exc, endpoint)}") from exc
    return Path(path)


def _describe(exc: Exception, endpoint: str) -> str:
    """The cause in one line; huggingface_hub's own messages run to several paragraphs."""
    from huggingface_hub import errors

    status = _status(exc)
    if isinstance(exc, errors.GatedRepoError) or status == 403:
        return "access denied: the repository is gated or the token lacks permission"
    if isinstance(exc, errors.RevisionNotFoundError):
        return "revision not found in the repository"
    if isinstance(exc, errors.LocalEntryNotFoundError):
        return f"cannot reach {endpoint} and the file is not in the cache ({_root_cause(exc)})"
    if isinstance(exc, errors.EntryNotFoundError):
        return "file not found in the repository"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "repository not found (or private: authentication required)"
    if status == 401:
        return "authentication required: pass a token or set HF_TOKEN"
    if status is not None:
        return f"HTTP {status} from {endpoint}"
    return f"download failed ({type(exc).__name__}: {_first_line(exc)})"


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _progress_class(callback: Progress) -> type[Any]:
    """A silent tqdm class reporting to `callback`; huggingface_hub drives progress through tqdm only."""
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class _Progress(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            self.done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self.done += int(n or 0)
            callback(self.done, int(self.total) if self.total else None)
            return None

    return _Progress
