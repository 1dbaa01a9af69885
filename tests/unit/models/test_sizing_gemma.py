"""Sizing of the second architecture: Gemma 3's sliding-window KV cache and wide heads, repacked weights, and
the tokenizer's share, against the buffer sizes llama-server 0c1e570 logs for the bundled GGUF files.

tests/engine/test_sizing_truth.py compares the whole estimate with llama-server's measured peak RSS.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest

from kubeinfer.models import sizing
from kubeinfer.models.sizing import (
    SHORT_ARRAY,
    ModelGeometry,
    SizingError,
    TensorInfo,
    compute_buffer_bytes,
    estimate_memory,
    kv_cache_bytes,
    read_geometry,
    repacked_bytes,
    swa_kv_cells,
)

MIB = 1024**2
VOCAB = 3 * SHORT_ARRAY  # long enough to be skipped, short enough for gguf's own item-by-item read


@pytest.fixture(scope="module")
def gemma(gemma3_gguf: Path) -> ModelGeometry:
    return read_geometry(gemma3_gguf)


@pytest.fixture(scope="module")
def smol(smollm2_gguf: Path) -> ModelGeometry:
    return read_geometry(smollm2_gguf)


def test_gemma_geometry(gemma: ModelGeometry) -> None:
    assert (gemma.architecture, gemma.block_count, gemma.embedding_length) == ("gemma3", 18, 640)
    assert (gemma.head_count, gemma.head_count_kv, gemma.key_length, gemma.value_length) == (4, 1, 256, 256)
    assert (gemma.vocab_size, gemma.tokenizer_merges) == (262144, 0)
    assert (gemma.sliding_window, gemma.swa_layers, gemma.full_attention_layers) == (512, 15, 3)
    assert gemma.tied_embeddings


def test_smollm2_has_full_attention_and_bpe_merges(smol: ModelGeometry) -> None:
    assert (smol.sliding_window, smol.swa_layers, smol.tokenizer_merges) == (0, 0, 48900)


@pytest.mark.parametrize(
    ("ctx_size", "parallel", "swa_cells", "logged_kv_mib"),
    [
        (512, 1, 512, 9.0),
        (2048, 1, 1024, 21.0),
        (4096, 1, 1024, 27.0),
        (16384, 1, 1024, 63.0),
        (512, 4, 1024, 18.0),
        (4096, 2, 2048, 42.0),
        (4096, 8, 4096, 72.0),
        (16384, 4, 4096, 108.0),
    ],
)
def test_sliding_window_layers_keep_only_the_window_plus_a_batch(
    gemma: ModelGeometry, ctx_size: int, parallel: int, swa_cells: int, logged_kv_mib: float
) -> None:
    """The sum of the two "CPU KV buffer size" lines (full and SWA cache) llama-server logs."""
    assert swa_kv_cells(gemma, ctx_size, parallel) == swa_cells
    assert kv_cache_bytes(gemma, ctx_size, parallel) == logged_kv_mib * MIB


@pytest.mark.parametrize(
    ("ctx_size", "parallel", "logged_mib"),
    [(512, 1, 18.77), (4096, 1, 22.77), (16384, 1, 34.77), (512, 4, 18.27), (4096, 4, 19.77), (16384, 4, 22.77)],
)
def test_compute_buffer_matches_the_log_with_wide_heads_and_two_masks(
    gemma: ModelGeometry, ctx_size: int, parallel: int, logged_mib: float
) -> None:
    assert compute_buffer_bytes(gemma, ctx_size, parallel) / MIB == pytest.approx(logged_mib, abs=0.025)


def test_repacked_copies_match_the_logged_cpu_repack_buffer(gemma: ModelGeometry, smol: ModelGeometry) -> None:
    """Gemma's Q4_K block weights are repacked (CPU_REPACK model buffer 12.66 MiB); SmolLM2's Q4_1 are not."""
    assert repacked_bytes(gemma) / MIB == pytest.approx(12.66, abs=0.01)
    assert repacked_bytes(smol) == 0
    assert repacked_bytes(gemma, host_blocks=0) == 0
    assert 0 < repacked_bytes(gemma, host_blocks=9) < repacked_bytes(gemma)


def test_repacking_needs_a_repackable_type_and_rows_in_eights() -> None:
    def geometry(*tensors: TensorInfo) -> ModelGeometry:
        base = ModelGeometry("t", "llama", 1, 64, 1, 1, 512, 64, 64, 10, 64, 0, 0, (0,), 0)
        return replace(base, tensors=tensors)

    assert repacked_bytes(geometry(TensorInfo("blk.0.ffn_up.weight", "Q4_0", 0, 100, rows=16))) == 100
    assert repacked_bytes(geometry(TensorInfo("blk.0.ffn_up.weight", "Q4_0", 0, 100, rows=12))) == 0
    assert repacked_bytes(geometry(TensorInfo("blk.0.ffn_up.weight", "Q8_0", 0, 100, rows=16))) == 0
    assert repacked_bytes(geometry(TensorInfo("token_embd.weight", "Q4_K", 0, 100, rows=16))) == 0


def test_offloading_every_block_leaves_no_repacked_copy_on_the_host(gemma: ModelGeometry) -> None:
    cpu = estimate_memory(gemma, 4096, 1)
    gpu = estimate_memory(gemma, 4096, 1, gpu_layers=gemma.block_count + 1)
    assert cpu.overhead_bytes - gpu.overhead_bytes == repacked_bytes(gemma)


def test_a_sliding_window_pattern_from_the_gguf_wins(gemma: ModelGeometry) -> None:
    from kubeinfer.models.sizing import _swa_layers

    assert _swa_layers("gemma3", 18, 512, None) == 15
    assert _swa_layers("gemma2", 26, 4096, None) == 13
    assert _swa_layers("gemma3", 18, 0, None) == 0
    assert _swa_layers("somethingnew", 18, 512, None) == 0
    assert _swa_layers("somethingnew", 4, 512, [True, False, True, True]) == 3
    assert _swa_layers("gemma3", 12, 512, 3) == 8


def _tokenizer_gguf(path: Path) -> Path:
    """A GGUF of one tensor with a tokenizer's long arrays (strings, floats) beside short ones (ints, strings)."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_array("llama.attention.head_count", [4, 8])
    writer.add_array("tokenizer.ggml.tokens", [f"token-{i}-" + "x" * (i % 7) for i in range(VOCAB)])
    writer.add_array("tokenizer.ggml.scores", [float(i) for i in range(VOCAB)])
    writer.add_array("tokenizer.ggml.merges", ["a b", "c d"])
    writer.add_tensor("token_embd.weight", np.ones((VOCAB, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_long_arrays_are_skipped_and_sized_short_ones_read_as_gguf_reads_them(tmp_path: Path) -> None:
    path = _tokenizer_gguf(tmp_path / "tokenizer.gguf")
    fields = sizing._gguf_fields(sizing._open_gguf(path), path)
    assert fields["tokenizer.ggml.tokens"] == fields["tokenizer.ggml.scores"] == VOCAB
    assert fields["llama.attention.head_count"] == [4, 8]
    assert fields["tokenizer.ggml.merges"] == ["a b", "c d"]
    library = gguf.GGUFReader(path)  # every item read, then long arrays counted as read_geometry once did
    assert fields == {n: len(f.data) if len(f.data) > SHORT_ARRAY else f.contents() for n, f in library.fields.items()}
    assert [(t.name, t.n_bytes) for t in sizing._open_gguf(path).tensors] == [("token_embd.weight", VOCAB * 8 * 4)]


def test_a_file_cut_inside_a_skipped_array_is_a_sizing_error(tmp_path: Path) -> None:
    whole = _tokenizer_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: whole.index(b"token-100-")])
    with pytest.raises(SizingError, match=f"^{cut}: not a readable GGUF file, truncated or corrupt"):
        read_geometry(cut)
