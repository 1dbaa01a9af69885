"""Page cache eviction before a cold load: the file's pages really leave the cache (mincore says so)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubeinfer.bench.page_cache import evict, resident_fraction


def written(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.write(os.urandom(size))
        handle.flush()
        os.fsync(handle.fileno())  # dirty pages are not dropped; written-back ones are
    return path


# The kernel may reclaim a few clean pages between a read and mincore when the machine is short of memory
# (CI once saw 1,021 of 1,024), so "read back" means nearly all, while "evicted" means none.
MOSTLY_RESIDENT = 0.9


def test_evicted_file_is_not_resident_and_reading_brings_it_back(tmp_path: Path) -> None:
    """tmp_path must be on a disk file system (on tmpfs the page cache is the file and cannot be dropped)."""
    path = written(tmp_path / "model.gguf", 4 << 20)
    path.read_bytes()
    assert resident_fraction(path) >= MOSTLY_RESIDENT
    evict(path)
    assert resident_fraction(path) == 0.0
    path.read_bytes()
    assert resident_fraction(path) >= MOSTLY_RESIDENT


def test_empty_file_has_nothing_resident(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    evict(path)
    assert resident_fraction(path) == 0.0


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        evict(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        resident_fraction(tmp_path / "nope.gguf")
