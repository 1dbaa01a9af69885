"""Size a model from its metadata: weights, KV cache, compute buffers and overhead, as llama-server does."""

from __future__ import annotations

import functools
import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: GGUF arrays longer than this (a tokenizer's tokens, scores, types and merges) are skipped unread and sized by
#: their length alone; shorter ones (per-layer head counts, a sliding-window pattern) are read as lists.
SHORT_ARRAY = 64

GIB = 1024**3

#: Physical batch (`-ub`) llama-server uses unless told otherwise (common/common.h: n_ubatch = 512).
DEFAULT_N_UBATCH = 512

#: Per-sequence context is padded to this many cells (llama-context.cpp: GGML_PAD(n_ctx / n_seq_max, 256)).
CTX_SEQ_PADDING = 256

#: llama-server's own footprint, whatever the model: the pages of the (static, 15 MB) binary that
#: run, about 12.4 MiB of file-backed RSS including the embedded web UI, plus about 8 MiB of
#: anonymous memory (libstdc++ and allocator arenas, HTTP server and thread-pool stacks, the
#: server's task queues). Measured as VmHWM minus every sized part with
#: perf/calibrate_sizing.py (llama.cpp 0c1e570, x86-64 static build, 2 threads).
RUNTIME_BASE_BYTES = 20 * 1024**2

#: Host memory per vocabulary entry held by llama_vocab: the token's text, score and attributes, the
#: token-to-id hash map node, the piece cache string, plus the tokenizer arrays gguf keeps while loading.
#: Fitted, with VOCAB_BYTES_PER_MERGE, to the peak RSS of SmolLM2 (BPE, 49k tokens, 49k merges) and
#: Gemma 3 (SentencePiece, 262k tokens, no merges) with perf/calibrate_sizing.py.
VOCAB_BYTES_PER_TOKEN = 165

#: Host memory per BPE merge rule (`tokenizer.ggml.merges`): the merge-rank map node and its two strings.
VOCAB_BYTES_PER_MERGE = 155

#: Context checkpoints per slot, in windows. llama-server (checkpoints on by default, up to 32 per slot)
#: saves the sliding-window layers' cache of a sequence while it reads a prompt, since those cells cannot
#: be rolled back: after its first token, at the start of its last user message and near its end, the last
#: holding up to a window of cells. Measured on Gemma 3 270M with the chat prompts of
#: perf/calibrate_sizing.py: 0.015 + 1.23 + 7.51 MiB = 1.17 windows per slot; a long multi-turn conversation
#: keeps more, which this does not count.
SWA_CHECKPOINT_WINDOWS = 1.2

#: Per slot, host memory that scales with the vocabulary: one f32 logits row in the output buffer
#: (llama_context::output_reserve) and the sampler's llama_token_data candidates (12 B per token).
SLOT_BYTES_PER_TOKEN = 4 + 12

#: GGUF types llama.cpp's CPU backend repacks into interleaved copies for its AVX2/AVX-512 matmul kernels
#: (ggml-cpu/repack.cpp, x86-64): a block weight of these types whose row count is a multiple of 8 is held
#: twice, the mmapped original (touched while repacking) and the anonymous repacked copy.
REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})

#: Architectures whose layers alternate sliding-window and full attention, and the pattern llama.cpp gives
#: them when the GGUF names none (src/models/<arch>.cpp, `load_swa_pattern(ml, n_pattern, dense_first)`):
#: layer il slides unless il % n_pattern == n_pattern - 1 (dense_first: unless il % n_pattern == 0).
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "cohere2": (4, False),
    "exaone4": (4, False),
    "gpt-oss": (2, False),
}

#: KV cache element sizes in bytes for the `--cache-type-k/-v` values llama-server accepts.
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}

_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


class SizingError(ValueError):
    """Sizing input could not be read; the message names the file or field and why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: str
    n_elements: int
    n_bytes: int
    #: ne[1], the row count of a matrix (0 for a vector).
    rows: int = 0


@dataclass(frozen=True)
class ModelGeometry:
    """What sizing needs to know about one model, read from a GGUF file or a Hugging Face config."""

    source: str
    architecture: str
    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: int
    context_length: int
    key_length: int
    value_length: int
    vocab_size: int
    feed_forward_length: int
    weights_bytes: int
    file_bytes: int
    layer_bytes: tuple[int, ...]
    output_bytes: int
    output_norm_bytes: int = 0
    tied_embeddings: bool = False
    tensor_types: dict[str, int] = field(default_factory=dict)
    tensors: tuple[TensorInfo, ...] = ()
    #: Cells a sliding-window layer attends to (`<arch>.attention.sliding_window`); 0 without one.
    sliding_window: int = 0
    #: How many of the blocks use sliding-window attention (a KV cache of their own, a few windows long).
    swa_layers: int = 0
    tokenizer_merges: int = 0

    @property
    def full_attention_layers(self) -> int:
        return self.block_count - self.swa_layers

    @property
    def kv_embedding_length(self) -> int:
        """Width of one layer's K plus V rows per token (n_embd_k_gqa + n_embd_v_gqa)."""
        return self.head_count_kv * (self.key_length + self.value_length)

    @property
    def input_bytes(self) -> int:
        """Weights outside the blocks and the output head (token embeddings): always in host memory."""
        head = self.output_norm_bytes if self.tied_embeddings else self.output_bytes
        return self.weights_bytes - sum(self.layer_bytes) - head


@dataclass(frozen=True)
class MemoryEstimate:
    """Host and device bytes one llama-server process needs; `total_bytes` is host plus device.

    `overhead_bytes` is host memory besides weights, KV cache and compute buffer: the runtime, the
    vocabulary, per-slot logits and sampler buffers, repacked weight copies and context checkpoints.
    """

    weights_bytes: int
    kv_cache_bytes: int
    compute_buffer_bytes: int
    overhead_bytes: int
    total_bytes: int
    gpu_layers: int
    gpu_bytes: int
    cpu_offload_bytes: int
    fits_without_offload: bool
    host_bytes: int

    def gb(self, name: str = "total_bytes") -> float:
        """One field in GiB, rounded to 2 decimals."""
        return round(float(getattr(self, name)) / GIB, 2)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_gb"] = self.gb()
        return data


# --- reading geometry --------------------------------------------------------------------------------


def read_geometry(path: Path) -> ModelGeometry:
    """Read a GGUF header and tensor table; SizingError names the file when it is not valid GGUF.

    The tokenizer's arrays are skipped (`_HeaderReader`), and results are kept per file version for the
    pre-flight checks that repeat per cell.
    """
    if not path.is_file():
        raise SizingError(f"{path}: no such model file")
    stat = path.stat()
    return _read_geometry(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _read_geometry(path: Path, mtime_ns: int, size: int) -> ModelGeometry:  # noqa: ARG001 - cache key
    reader = _open_gguf(path)
    fields = _gguf_fields(reader, path)
    arch = _required(fields, "general.architecture", path)
    if not isinstance(arch, str):
        raise SizingError(f"{path}: general.architecture is not a string")
    tensors = tuple(
        TensorInfo(t.name, t.tensor_type.name, int(t.n_elements), int(t.n_bytes), _rows(t.shape))
        for t in reader.tensors
    )
    file_bytes = size
    _check_tensor_data(reader, path, file_bytes)

    def key(name: str) -> Any:
        return fields.get(f"{arch}.{name}")

    blocks = int(_required(fields, f"{arch}.block_count", path))
    n_embd = int(_required(fields, f"{arch}.embedding_length", path))
    n_head = _first_int(key("attention.head_count"), path, f"{arch}.attention.head_count")
    n_head_kv = _first_int(key("attention.head_count_kv") or n_head, path, f"{arch}.attention.head_count_kv")
    head_dim = n_embd // n_head if n_head else 0
    vocab = key("vocab_size") or fields.get("tokenizer.ggml.tokens") or 0
    window = int(key("attention.sliding_window") or 0)
    return ModelGeometry(
        source=str(path),
        architecture=arch,
        block_count=blocks,
        embedding_length=n_embd,
        head_count=n_head,
        head_count_kv=n_head_kv,
        context_length=int(key("context_length") or 0),
        key_length=int(key("attention.key_length") or head_dim),
        value_length=int(key("attention.value_length") or head_dim),
        vocab_size=int(vocab),
        feed_forward_length=_first_int(key("feed_forward_length") or 0, path, "feed_forward_length"),
        weights_bytes=sum(t.n_bytes for t in tensors),
        file_bytes=file_bytes,
        layer_bytes=_layer_bytes(tensors, blocks),
        output_bytes=_output_bytes(tensors),
        output_norm_bytes=_output_norm_bytes(tensors),
        tied_embeddings=not any(t.name == "output.weight" for t in tensors),
        tensor_types=_count_types(tensors),
        tensors=tensors,
        sliding_window=window,
        swa_layers=_swa_layers(arch, blocks, window, key("attention.sliding_window_pattern")),
        tokenizer_merges=_count(fields.get("tokenizer.ggml.merges")),
    )


def _count(value: Any) -> int:
    """An array field's length (`_gguf_fields` gives short arrays as lists, long ones as their length)."""
    return len(value) if isinstance(value, list) else int(value or 0)


def _rows(shape: Any) -> int:
    return int(shape[1]) if len(shape) > 1 else 0


def _swa_layers(arch: str, blocks: int, window: int, pattern: Any) -> int:
    """Sliding-window layers as llama.cpp counts them: a per-layer pattern from the GGUF, else the arch's own.

    An architecture not in SWA_PATTERNS is sized as all full attention, which can only overestimate.
    """
    if window <= 0:
        return 0
    if isinstance(pattern, list):
        return sum(1 for flag in pattern[:blocks] if flag)
    n_pattern, dense_first = SWA_PATTERNS.get(arch, (1, False))
    if isinstance(pattern, int):
        n_pattern = pattern
    if n_pattern == 0:
        return blocks
    if dense_first:
        return sum(1 for il in range(blocks) if il % n_pattern != 0)
    return sum(1 for il in range(blocks) if il % n_pattern < n_pattern - 1)


def _open_gguf(path: Path) -> Any:
    try:
        return _header_reader()(path)
    except (ValueError, OSError, IndexError, KeyError, TypeError) as exc:
        raise SizingError(f"{path}: not a readable GGUF file, truncated or corrupt ({exc})") from None


@functools.cache
def _header_reader() -> type:
    """gguf's GGUFReader, but an array longer than SHORT_ARRAY is skipped, its items unread.

    The library makes a numpy view of every item of every array: Gemma 3's 262,144 tokens, scores and types
    took 11 s of a 2-core machine, to size a model from a few dozen fields. Defined on first use, as gguf is
    imported only where a GGUF file is read.
    """
    import gguf
    import numpy as np

    class HeaderReader(gguf.GGUFReader):
        def _get_field_parts(self, orig_offs: int, raw_type: int) -> tuple[int, list[Any], list[int], list[Any]]:
            if raw_type != gguf.GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            count, item_type = int(alen[0]), gguf.GGUFValueType(raw_itype[0])
            if count <= SHORT_ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            items = orig_offs + 12
            scalar = self.gguf_scalar_to_np.get(item_type)
            if scalar is not None:
                end = items + count * np.dtype(scalar).itemsize
            elif item_type == gguf.GGUFValueType.STRING:
                order = "<" if self.endianess == gguf.GGUFEndian.LITTLE else ">"
                end = _skip_strings(self.data, items, count, order)
            else:  # arrays of arrays: none in the files sized here, read item by item
                return super()._get_field_parts(orig_offs, raw_type)
            if end > len(self.data):
                raise ValueError(f"an array of {count} items runs past the end of the file")
            return end - orig_offs, [raw_itype, alen], [], [gguf.GGUFValueType.ARRAY, item_type]

    return HeaderReader


def _skip_strings(data: Any, offset: int, count: int, order: str) -> int:
    """The offset after `count` GGUF strings (a u64 length, then the bytes) starting at `offset`."""
    size, length = len(data), struct.Struct(f"{order}Q")
    buffer = memoryview(data)
    for _ in range(count):
        if offset + 8 > size:
            raise ValueError(f"a string array of {count} items runs past the end of the file")
        offset += 8 + length.unpack_from(buffer, offset)[0]
    return offset


def _gguf_fields(reader: Any, path: Path) -> dict[str, Any]:
    """Scalar and short fields as Python values; long arrays (token lists) become their length."""
    values: dict[str, Any] = {}
    for name, fld in reader.fields.items():
        try:
            values[name] = _array_length(fld) if _is_long_array(fld) else fld.contents()
        except (ValueError, IndexError, TypeError) as exc:
            raise SizingError(f"{path}: GGUF field {name} is unreadable ({exc})") from None
    return values


def _array_length(fld: Any) -> int:
    """Items of an array field; its parts are the key's length and bytes, the value type, the item type, the count."""
    return int(fld.parts[4][0])


def _is_long_array(fld: Any) -> bool:
    import gguf

    return bool(fld.types) and fld.types[0] == gguf.GGUFValueType.ARRAY and _array_length(fld) > SHORT_ARRAY


def _check_tensor_data(reader: Any, path: Path, file_bytes: int) -> None:
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > file_bytes:
            raise SizingError(
                f"{path}: truncated GGUF file: tensor {tensor.name} ends at byte {end} "
                f"but the file has {file_bytes} bytes"
            )


def _required(fields: dict[str, Any], name: str, path: Path) -> Any:
    if name not in fields:
        raise SizingError(f"{path}: GGUF metadata lacks {name}")
    return fields[name]


def _first_int(value: Any, path: Path, name: str) -> int:
    """Per-layer arrays (variable head counts) are sized by their largest entry."""
    if isinstance(value, list):
        value = max(value) if value else 0
    if value is None:
        raise SizingError(f"{path}: GGUF metadata lacks {name}")
    return int(value)


def _layer_bytes(tensors: tuple[TensorInfo, ...], blocks: int) -> tuple[int, ...]:
    sizes = [0] * blocks
    for tensor in tensors:
        match = _LAYER_RE.match(tensor.name)
        if match and int(match.group(1)) < blocks:
            sizes[int(match.group(1))] += tensor.n_bytes
    return tuple(sizes)


def _output_bytes(tensors: tuple[TensorInfo, ...]) -> int:
    """The output head and its norm; a model with tied embeddings reuses token_embd for the head."""
    by_name = {t.name: t.n_bytes for t in tensors}
    return by_name.get("output.weight", by_name.get("token_embd.weight", 0)) + _output_norm_bytes(tensors)


def _output_norm_bytes(tensors: tuple[TensorInfo, ...]) -> int:
    return sum(t.n_bytes for t in tensors if t.name.startswith("output_norm."))


def _count_types(tensors: tuple[TensorInfo, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tensor in tensors:
        counts[tensor.ggml_type] = counts.get(tensor.ggml_type, 0) + tensor.n_bytes
    return counts


def geometry_from_hf_config(
    config: dict[str, Any], safetensors_index: dict[str, Any] | None, dtype_bytes: float
) -> ModelGeometry:
    """Geometry of an unquantized Hugging Face model from config.json and model.safetensors.index.json.

    Weights come from the index's `metadata.total_size` when given, else from a parameter count
    derived from the config (embeddings, attention and gated MLP per layer) times `dtype_bytes`.
    """
    cfg = config.get("text_config", config)
    try:
        n_embd = int(cfg["hidden_size"])
        blocks = int(cfg["num_hidden_layers"])
        n_head = int(cfg["num_attention_heads"])
        vocab = int(cfg["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SizingError(f"config.json: missing or invalid field {exc}") from None
    n_head_kv = int(cfg.get("num_key_value_heads") or n_head)
    head_dim = int(cfg.get("head_dim") or n_embd // n_head)
    n_ff = int(cfg.get("intermediate_size") or 4 * n_embd)
    tied = bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    layer_params = n_embd * head_dim * (2 * n_head + 2 * n_head_kv) + 3 * n_embd * n_ff + 2 * n_embd
    embed_params = vocab * n_embd
    params = blocks * layer_params + embed_params * (1 if tied else 2) + n_embd
    weights = _index_total_size(safetensors_index) or int(params * dtype_bytes)
    scale = weights / params
    return ModelGeometry(
        source=str(cfg.get("_name_or_path") or config.get("_name_or_path") or "config.json"),
        architecture=str((config.get("architectures") or [cfg.get("model_type", "unknown")])[0]),
        block_count=blocks,
        embedding_length=n_embd,
        head_count=n_head,
        head_count_kv=n_head_kv,
        context_length=int(cfg.get("max_position_embeddings") or 0),
        key_length=head_dim,
        value_length=head_dim,
        vocab_size=vocab,
        feed_forward_length=n_ff,
        weights_bytes=weights,
        file_bytes=weights,
        layer_bytes=tuple(int(layer_params * scale) for _ in range(blocks)),
        output_bytes=int((embed_params + n_embd) * scale),
        output_norm_bytes=int(n_embd * scale),
        tied_embeddings=tied,
        tensor_types={str(cfg.get("torch_dtype") or f"{dtype_bytes}B"): weights},
    )


def _index_total_size(index: dict[str, Any] | None) -> int:
    if not index:
        return 0
    try:
        return int(index["metadata"]["total_size"])
    except (KeyError, TypeError, ValueError):
        raise SizingError("model.safetensors.index.json: metadata.total_size is missing or invalid") from None


def load_hf_geometry(model_dir: Path, dtype_bytes: float = 2.0) -> ModelGeometry:
    """`geometry_from_hf_config` for a downloaded model directory."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
        index_path = model_dir / "model.safetensors.index.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else None
    except (OSError, json.JSONDecodeError) as exc:
        raise SizingError(f"{model_dir}: cannot read config.json or its safetensors index ({exc})") from None
    return geometry_from_hf_config(config, index, dtype_bytes)


# --- the estimate -------------------------------------------------------------------------------------


def kv_type_bytes(kv_type: str) -> float:
    try:
        return KV_TYPE_BYTES[kv_type.lower()]
    except KeyError:
        raise SizingError(f"unknown KV cache type {kv_type!r}; one of {', '.join(KV_TYPE_BYTES)}") from None


def kv_cells(ctx_size: int, parallel: int) -> int:
    """KV cells llama-server allocates for `-c ctx_size -np parallel` (non-unified cache: a stream per slot).

    llama-context.cpp pads n_ctx to 256 and gives each sequence n_ctx_seq = GGML_PAD(n_ctx / parallel, 256)
    cells; the cache holds `parallel` streams of that size. ctx_size is the total across slots.
    """
    parallel = max(1, parallel)
    per_seq = _pad(_pad(ctx_size, CTX_SEQ_PADDING) // parallel, CTX_SEQ_PADDING)
    return per_seq * parallel


def swa_kv_cells(geometry: ModelGeometry, ctx_size: int, parallel: int) -> int:
    """KV cells of the sliding-window layers' cache (llama-kv-cache-iswa.cpp, non-unified: a stream per slot).

    Each stream holds GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256) cells: the window plus one batch.
    """
    if not geometry.swa_layers:
        return 0
    parallel = max(1, parallel)
    per_seq = kv_cells(ctx_size, parallel) // parallel
    return _pad(min(per_seq, geometry.sliding_window + DEFAULT_N_UBATCH), CTX_SEQ_PADDING) * parallel


def kv_cache_bytes(geometry: ModelGeometry, ctx_size: int, parallel: int, kv_type: str = "f16") -> int:
    """K and V for every layer and cell: 2 * n_layers * cells * n_kv_heads * head_dim * bytes(kv_type).

    Full-attention layers have `kv_cells` cells; sliding-window layers only `swa_kv_cells`.
    """
    cells = geometry.full_attention_layers * kv_cells(ctx_size, parallel)
    cells += geometry.swa_layers * swa_kv_cells(geometry, ctx_size, parallel)
    return int(cells * geometry.kv_embedding_length * kv_type_bytes(kv_type))


def compute_buffer_bytes(geometry: ModelGeometry, ctx_size: int, parallel: int) -> int:
    """The compute buffer llama-server logs on CPU for the worst-case prompt graph."""
    return _compute_parts(geometry, ctx_size, parallel)[0]


def _compute_parts(geometry: ModelGeometry, ctx_size: int, parallel: int) -> tuple[int, int]:
    """(backend compute buffer, host-side graph inputs) as llama_context::sched_reserve sizes them.

    The worst-case graph has n_tokens = min(n_ctx, n_ubatch) and, in llama-server, one output per
    slot (n_outputs_max = n_parallel), so the logits rows are few and the peak of ggml-alloc's
    live set is the feed-forward stage: residual, norm and FFN output (3 x n_embd) and the
    attention output (n_head x head_dim, wider than n_embd in Gemma) next to the gate, up and
    activation tensors (3 x n_ff), all f32 per token. Flash attention (chosen automatically on
    CPU) never materialises the n_kv x n_tokens scores; its f16 mask of n_ctx_seq cells x n_tokens
    per stream is a graph input alive for the whole graph, and a sliding-window model has a second
    mask over its window's cells. This reproduces the logged "CPU compute buffer size" on
    SmolLM2-135M and Gemma 3 270M to 0.02 MiB at every context size and slot count measured.
    """
    n_tokens = min(_pad(ctx_size, CTX_SEQ_PADDING), DEFAULT_N_UBATCH)
    n_embd, n_ff = geometry.embedding_length, geometry.feed_forward_length or 4 * geometry.embedding_length
    n_attn = max(n_embd, geometry.head_count * geometry.key_length)
    ffn_stage = n_tokens * (3 * n_ff + 3 * n_embd + n_attn) * 4
    output_stage = n_tokens * 2 * n_embd * 4 + geometry.vocab_size * min(n_tokens, max(1, parallel)) * 4
    streams = max(1, parallel)
    mask_cells = kv_cells(ctx_size, parallel) // streams
    if geometry.swa_layers:
        mask_cells += swa_kv_cells(geometry, ctx_size, parallel) // streams
    mask = mask_cells * _pad(n_tokens, 64) * 2
    return max(ffn_stage, output_stage) + mask, n_tokens * n_embd * 4


def checkpoint_bytes(geometry: ModelGeometry, ctx_size: int, parallel: int, kv_type: str = "f16") -> int:
    """Host memory of the context checkpoints of a sliding-window model's slots (SWA_CHECKPOINT_WINDOWS)."""
    if not geometry.swa_layers:
        return 0
    parallel = max(1, parallel)
    window = min(geometry.sliding_window, kv_cells(ctx_size, parallel) // parallel)
    per_window = geometry.swa_layers * window * geometry.kv_embedding_length * kv_type_bytes(kv_type)
    return int(per_window * SWA_CHECKPOINT_WINDOWS * parallel)


def repacked_bytes(geometry: ModelGeometry, host_blocks: int | None = None) -> int:
    """Bytes of the repacked copies the CPU backend makes of the first `host_blocks` blocks' weights."""
    blocks = geometry.block_count if host_blocks is None else host_blocks
    total = 0
    for tensor in geometry.tensors:
        match = _LAYER_RE.match(tensor.name)
        if (
            match
            and int(match.group(1)) < blocks
            and tensor.ggml_type in REPACKED_TYPES
            and tensor.rows
            and tensor.rows % 8 == 0
        ):
            total += tensor.n_bytes
    return total


def overhead_bytes(geometry: ModelGeometry, parallel: int, host_blocks: int | None = None) -> int:
    """Runtime base, the vocabulary's host structures, the per-slot logits row and sampler candidates, and the
    repacked copies of the weights of the blocks left on the CPU (all of them unless `host_blocks`)."""
    per_slot = geometry.vocab_size * SLOT_BYTES_PER_TOKEN * max(1, parallel)
    vocab = geometry.vocab_size * VOCAB_BYTES_PER_TOKEN + geometry.tokenizer_merges * VOCAB_BYTES_PER_MERGE
    return RUNTIME_BASE_BYTES + vocab + per_slot + repacked_bytes(geometry, host_blocks)


def estimate_memory(
    geometry: ModelGeometry,
    ctx_size: int,
    parallel: int,
    kv_type: str = "f16",
    gpu_vram_bytes: int | None = None,
    gpu_layers: int | None = None,
) -> MemoryEstimate:
    """Memory llama-server needs for `geometry` at `-c ctx_size -np parallel`.

    Without a GPU everything is host memory: `total_bytes` is the peak RSS (mmapped weights count
    once touched, and the warm-up run touches them all). With `gpu_vram_bytes` or `gpu_layers`,
    blocks are offloaded last-first as llama.cpp's `-ngl` does: each offloaded block moves its
    weights and its share of the KV cache to the device; `-ngl n_layers+1` also moves the output
    head (a copy of token_embd when embeddings are tied). The compute buffer then lives on the
    device and the host keeps a small one for the graph inputs. `gpu_layers=None` picks the most
    that fit. `cpu_offload_bytes` is what stays in host memory because it did not fit the device,
    and `fits_without_offload` says whether the whole model fits the device (always True on CPU).
    """
    if ctx_size <= 0 or parallel <= 0:
        raise SizingError(f"ctx_size and parallel must be positive (got {ctx_size}, {parallel})")
    kv = kv_cache_bytes(geometry, ctx_size, parallel, kv_type)
    device_compute, host_compute = _compute_parts(geometry, ctx_size, parallel)
    weights = geometry.weights_bytes
    checkpoints = checkpoint_bytes(geometry, ctx_size, parallel, kv_type)
    if gpu_vram_bytes is None and not gpu_layers:
        overhead = overhead_bytes(geometry, parallel) + checkpoints
        total = weights + kv + device_compute + overhead
        return MemoryEstimate(weights, kv, device_compute, overhead, total, 0, 0, 0, True, total)
    compute = device_compute + host_compute
    full = geometry.block_count + 1
    layers = _choose_gpu_layers(geometry, kv, device_compute, gpu_vram_bytes, gpu_layers)
    host_blocks = geometry.block_count - _offloaded_blocks(geometry, layers)[0]
    overhead = overhead_bytes(geometry, parallel, host_blocks) + checkpoints
    gpu = _gpu_bytes(geometry, kv, device_compute, layers)
    host_weights, host_kv = _host_share(geometry, kv, layers)
    host = host_weights + host_kv + (host_compute if layers else device_compute) + overhead
    offload = 0 if layers >= full else host_weights - geometry.input_bytes + host_kv
    fits = gpu_vram_bytes is not None and _gpu_bytes(geometry, kv, device_compute, full) <= gpu_vram_bytes
    return MemoryEstimate(weights, kv, compute, overhead, host + gpu, layers, gpu, offload, fits, host)


def max_gpu_layers(
    geometry: ModelGeometry, ctx_size: int, parallel: int, gpu_vram_bytes: int, kv_type: str = "f16"
) -> int:
    """How many layers (`-ngl`) fit in `gpu_vram_bytes`; n_layers + 1 means the output head fits too."""
    kv = kv_cache_bytes(geometry, ctx_size, parallel, kv_type)
    device_compute, _ = _compute_parts(geometry, ctx_size, parallel)
    return _choose_gpu_layers(geometry, kv, device_compute, gpu_vram_bytes, None)


def _choose_gpu_layers(geometry: ModelGeometry, kv: int, compute: int, vram: int | None, requested: int | None) -> int:
    full = geometry.block_count + 1
    if requested is not None or vram is None:
        return max(0, min(requested or 0, full))
    fitting = 0
    for layers in range(1, full + 1):
        if _gpu_bytes(geometry, kv, compute, layers) > vram:
            break
        fitting = layers
    return fitting


def _offloaded_blocks(geometry: ModelGeometry, layers: int) -> tuple[int, bool]:
    return min(max(layers, 0), geometry.block_count), layers > geometry.block_count


def _gpu_bytes(geometry: ModelGeometry, kv: int, compute: int, layers: int) -> int:
    """Device bytes for `-ngl layers`: the last blocks, their KV share, the head, the compute buffer."""
    if layers <= 0:
        return 0
    blocks, head = _offloaded_blocks(geometry, layers)
    weights = sum(geometry.layer_bytes[geometry.block_count - blocks :])
    return weights + (geometry.output_bytes if head else 0) + _kv_share(geometry, kv, blocks) + compute


def _host_share(geometry: ModelGeometry, kv: int, layers: int) -> tuple[int, int]:
    """Host weights and KV bytes for `-ngl layers`; tied output heads share token_embd on the host."""
    blocks, head = _offloaded_blocks(geometry, layers)
    weights = geometry.input_bytes + sum(geometry.layer_bytes[: geometry.block_count - blocks])
    if not head:
        weights += geometry.output_norm_bytes if geometry.tied_embeddings else geometry.output_bytes
    return weights, kv - _kv_share(geometry, kv, blocks)


def _kv_share(geometry: ModelGeometry, kv: int, blocks: int) -> int:
    return kv * blocks // max(1, geometry.block_count)


def _pad(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple) if value > 0 else multiple
