"""Facts about GGUF quantization names that the planner and rules need."""

from __future__ import annotations

import re

#: Approximate bits per weight of llama.cpp's quantization types (from llama.cpp's quantize table).
_BITS_PER_WEIGHT: dict[str, float] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "IQ4_NL": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.5,
    "IQ3_M": 3.66,
    "IQ3_XXS": 3.06,
    "Q2_K": 2.96,
    "Q2_K_S": 2.96,
    "IQ2_M": 2.7,
    "IQ2_XS": 2.31,
    "IQ1_M": 1.75,
    "IQ1_S": 1.56,
}


def bits_per_weight(quantization: str) -> float:
    """Known value, else the leading digit of the name (Q6_X -> 6.5): good enough to order a ladder."""
    if quantization in _BITS_PER_WEIGHT:
        return _BITS_PER_WEIGHT[quantization]
    match = re.match(r"^I?Q(\d)", quantization)
    return float(match.group(1)) + 0.5 if match else 16.0


def estimated_file_gb(parameters_billion: float, quantization: str) -> float:
    return parameters_billion * bits_per_weight(quantization) / 8
