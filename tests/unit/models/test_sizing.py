"""Sizing from GGUF and Hugging Face metadata, checked against llama.cpp's own allocation figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer.models.sizing import (
    MemoryEstimate,
    ModelGeometry,
    SizingError,
    compute_buffer_bytes,
    estimate_memory,
    geometry_from_hf_config,
    kv_cache_bytes,
    kv_cells,
    max_gpu_layers,
    read_geometry,
)

MIB = 1024**2

#: SmolLM2-135M-Instruct's config.json on the Hub (the model the bundled GGUF was converted from).
SMOLLM2_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "intermediate_size": 1536,
    "max_position_embeddings": 8192,
    "model_type": "llama",
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "vocab_size": 49152,
}
SMOLLM2_PARAMS = 134_515_008


@pytest.fixture(scope="module")
def smol(smollm2_gguf: Path) -> ModelGeometry:
    return read_geometry(smollm2_gguf)


def uniform_geometry(blocks: int = 10, layer: int = 100 * MIB, head: int = 50 * MIB) -> ModelGeometry:
    """A model with equal blocks, an untied output head and token embeddings the size of the head."""
    return ModelGeometry(
        source="synthetic",
        architecture="llama",
        block_count=blocks,
        embedding_length=1024,
        head_count=16,
        head_count_kv=4,
        context_length=4096,
        key_length=64,
        value_length=64,
        vocab_size=32000,
        feed_forward_length=4096,
        weights_bytes=blocks * layer + 2 * head,
        file_bytes=blocks * layer + 2 * head,
        layer_bytes=(layer,) * blocks,
        output_bytes=head,
    )


def test_geometry_read_from_the_bundled_gguf(smol: ModelGeometry, smollm2_gguf: Path) -> None:
    assert smol.architecture == "llama"
    assert (smol.block_count, smol.embedding_length, smol.feed_forward_length) == (30, 576, 1536)
    assert (smol.head_count, smol.head_count_kv, smol.key_length, smol.value_length) == (9, 3, 64, 64)
    assert (smol.context_length, smol.vocab_size) == (8192, 49152)
    assert smol.file_bytes == smollm2_gguf.stat().st_size


def test_geometry_accounts_for_every_tensor_byte(smol: ModelGeometry) -> None:
    assert smol.tensor_types == {"Q4_1": 66_355_200, "Q8_0": 30_081_024, "F32": 140_544}
    assert smol.weights_bytes == sum(t.n_bytes for t in smol.tensors) == 96_576_768
    assert smol.tied_embeddings
    assert smol.input_bytes + sum(smol.layer_bytes) + smol.output_norm_bytes == smol.weights_bytes
    assert len(set(smol.layer_bytes)) == 1


def test_kv_cache_is_two_tensors_per_layer_per_cell(smol: ModelGeometry) -> None:
    # 2 (K and V) x 30 layers x 8192 cells x 3 KV heads x 64 dims x 2 bytes (f16)
    assert kv_cache_bytes(smol, 8192, 1) == 2 * 30 * 8192 * 3 * 64 * 2 == 180 * MIB
    assert kv_cache_bytes(smol, 8192, 1, "q8_0") == 180 * MIB // 2 * 34 // 32
    assert kv_cache_bytes(smol, 8192, 1, "f32") == 360 * MIB


def test_ctx_size_is_shared_by_slots_and_padded_per_slot() -> None:
    assert kv_cells(8192, 4) == 8192
    assert kv_cells(512, 4) == 4 * 256
    assert kv_cells(1000, 1) == 1024
    assert kv_cells(16384, 3) == 3 * 5632


def test_unknown_kv_type_is_a_sizing_error(smol: ModelGeometry) -> None:
    with pytest.raises(SizingError, match="unknown KV cache type 'q3_x'"):
        kv_cache_bytes(smol, 4096, 1, "q3_x")


@pytest.mark.parametrize(
    ("ctx_size", "parallel", "logged_mib"),
    [(256, 1, 6.88), (512, 1, 14.01), (2048, 1, 15.51), (16384, 1, 29.51), (512, 4, 13.76), (16384, 4, 17.51)],
)
def test_compute_buffer_matches_llama_server_log(
    smol: ModelGeometry, ctx_size: int, parallel: int, logged_mib: float
) -> None:
    """`CPU compute buffer size` as llama-server 0c1e570 logs it for these -c/-np values."""
    assert compute_buffer_bytes(smol, ctx_size, parallel) / MIB == pytest.approx(logged_mib, abs=0.02)


def test_cpu_estimate_is_the_sum_of_its_parts(smol: ModelGeometry) -> None:
    estimate = estimate_memory(smol, 8192, 4)

    parts = estimate.weights_bytes + estimate.kv_cache_bytes + estimate.compute_buffer_bytes + estimate.overhead_bytes
    assert estimate.total_bytes == estimate.host_bytes == parts
    assert (estimate.gpu_layers, estimate.gpu_bytes, estimate.cpu_offload_bytes) == (0, 0, 0)
    assert estimate.fits_without_offload
    assert 300 * MIB < estimate.total_bytes < 350 * MIB


def test_estimate_grows_with_context_by_the_kv_cache(smol: ModelGeometry) -> None:
    small, large = estimate_memory(smol, 2048, 1), estimate_memory(smol, 16384, 1)

    assert large.kv_cache_bytes - small.kv_cache_bytes == 315 * MIB
    assert large.total_bytes > small.total_bytes + 315 * MIB


def test_estimate_serialises_with_gib_figures(smol: ModelGeometry) -> None:
    estimate = estimate_memory(smol, 4096, 2)
    data = estimate.to_dict()

    assert data["total_bytes"] == estimate.total_bytes
    assert data["total_gb"] == estimate.gb() == round(estimate.total_bytes / 1024**3, 2)
    assert set(data) >= {f.name for f in MemoryEstimate.__dataclass_fields__.values()}


def test_offload_puts_the_layers_that_fit_on_the_gpu() -> None:
    geometry = uniform_geometry()
    kv = kv_cache_bytes(geometry, 4096, 1)
    compute = compute_buffer_bytes(geometry, 4096, 1)
    vram = 4 * (100 * MIB + kv // 10) + compute + MIB

    estimate = estimate_memory(geometry, 4096, 1, gpu_vram_bytes=vram)

    assert estimate.gpu_layers == 4 == max_gpu_layers(geometry, 4096, 1, vram)
    assert estimate.gpu_bytes <= vram
    assert not estimate.fits_without_offload
    # six blocks, their KV and the output head stay in host memory; token embeddings always do
    assert estimate.cpu_offload_bytes == 6 * 100 * MIB + 50 * MIB + kv - 4 * (kv // 10)
    assert estimate.host_bytes == estimate.total_bytes - estimate.gpu_bytes


def test_whole_model_on_a_large_gpu_leaves_only_embeddings_on_the_host() -> None:
    geometry = uniform_geometry()

    estimate = estimate_memory(geometry, 4096, 1, gpu_vram_bytes=80 * 1024**3)

    assert estimate.gpu_layers == geometry.block_count + 1
    assert estimate.fits_without_offload
    assert estimate.cpu_offload_bytes == 0
    assert estimate.gpu_bytes > geometry.weights_bytes - 50 * MIB


def test_gpu_too_small_for_one_layer_keeps_everything_on_the_host() -> None:
    estimate = estimate_memory(uniform_geometry(), 4096, 1, gpu_vram_bytes=10 * MIB)

    assert (estimate.gpu_layers, estimate.gpu_bytes) == (0, 0)
    assert not estimate.fits_without_offload
    assert estimate.total_bytes == estimate_memory(uniform_geometry(), 4096, 1).total_bytes


def test_requested_gpu_layers_are_honoured_without_vram() -> None:
    estimate = estimate_memory(uniform_geometry(), 4096, 1, gpu_layers=3)

    assert estimate.gpu_layers == 3
    assert estimate.gpu_bytes > 3 * 100 * MIB


def test_tied_head_offload_copies_token_embeddings(smol: ModelGeometry) -> None:
    full = estimate_memory(smol, 4096, 1, gpu_layers=31)

    assert full.gpu_bytes >= smol.weights_bytes
    assert full.host_bytes >= smol.input_bytes


def test_hf_config_geometry_agrees_with_the_gguf(smol: ModelGeometry) -> None:
    index = {"metadata": {"total_size": SMOLLM2_PARAMS * 2}, "weight_map": {}}

    geometry = geometry_from_hf_config(SMOLLM2_CONFIG, index, 2.0)

    assert geometry.weights_bytes == SMOLLM2_PARAMS * 2
    assert (geometry.block_count, geometry.head_count_kv, geometry.key_length) == (30, 3, 64)
    assert geometry.tied_embeddings
    assert kv_cache_bytes(geometry, 8192, 4) == kv_cache_bytes(smol, 8192, 4)
    assert compute_buffer_bytes(geometry, 8192, 4) == compute_buffer_bytes(smol, 8192, 4)


def test_hf_config_without_index_counts_parameters() -> None:
    geometry = geometry_from_hf_config(SMOLLM2_CONFIG, None, 2.0)

    assert geometry.weights_bytes == SMOLLM2_PARAMS * 2


def test_hf_config_missing_a_field_names_it() -> None:
    config = {k: v for k, v in SMOLLM2_CONFIG.items() if k != "num_hidden_layers"}

    with pytest.raises(SizingError, match="num_hidden_layers"):
        geometry_from_hf_config(config, None, 2.0)


def test_hf_index_without_total_size_is_a_sizing_error() -> None:
    with pytest.raises(SizingError, match="metadata.total_size"):
        geometry_from_hf_config(SMOLLM2_CONFIG, {"weight_map": {}}, 2.0)


@pytest.mark.parametrize("keep_bytes", [0, 100, 5_000_000])
def test_truncated_gguf_is_a_sizing_error_naming_the_file(smollm2_gguf: Path, tmp_path: Path, keep_bytes: int) -> None:
    broken = tmp_path / "broken.gguf"
    with smollm2_gguf.open("rb") as source:
        broken.write_bytes(source.read(keep_bytes))

    with pytest.raises(SizingError, match=f"^{broken}: "):
        read_geometry(broken)


def test_non_gguf_file_is_a_sizing_error(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("this is not a model\n" * 10)

    with pytest.raises(SizingError, match=f"{text}: not a readable GGUF file"):
        read_geometry(text)


def test_missing_file_is_a_sizing_error(tmp_path: Path) -> None:
    with pytest.raises(SizingError, match="no such model file"):
        read_geometry(tmp_path / "absent.gguf")


def test_non_positive_context_is_a_sizing_error(smol: ModelGeometry) -> None:
    with pytest.raises(SizingError, match="ctx_size and parallel must be positive"):
        estimate_memory(smol, 0, 1)
