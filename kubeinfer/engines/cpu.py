"""Which x86 instruction sets to compile llama.cpp for, derived from the host's CPU flags."""

from __future__ import annotations

from pathlib import Path

# ggml option -> /proc/cpuinfo flag. AMX is deliberately absent: some sandboxes report AMX but do not
# grant tile state, and the first AMX instruction then faults (see docs/engines.md).
_GGML_ISA_FLAGS: dict[str, str] = {
    "GGML_SSE42": "sse4_2",
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_BMI2": "bmi2",
    "GGML_AVX_VNNI": "avx_vnni",
    "GGML_AVX512": "avx512f",
    "GGML_AVX512_VBMI": "avx512vbmi",
    "GGML_AVX512_VNNI": "avx512_vnni",
    "GGML_AVX512_BF16": "avx512_bf16",
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def ggml_isa_options(flags: set[str]) -> dict[str, bool]:
    """CMake options for ggml's CPU backend, with native detection off and AMX never enabled."""
    options = {name: flag in flags for name, flag in _GGML_ISA_FLAGS.items()}
    options.update({"GGML_NATIVE": False, "GGML_AMX_TILE": False, "GGML_AMX_INT8": False, "GGML_AMX_BF16": False})
    return options
