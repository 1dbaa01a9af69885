"""Derive a quantization from another with llama-quantize.

Requantizing an already quantized file (`--allow-requantize`) gives a realistic *test ladder* of sizes and
speeds, but its quality is below a quantization made from the original F16 weights.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class QuantizeError(RuntimeError):
    """llama-quantize failed; the message carries the end of its output."""


def quantize(llama_quantize: Path, source: Path, dest: Path, quantization: str, threads: int | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    cmd = [str(llama_quantize), "--allow-requantize", str(source), str(tmp), quantization]
    if threads:
        cmd.append(str(threads))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise QuantizeError(
            f"llama-quantize {quantization} from {source.name} failed (exit {proc.returncode}):\n{tail}"
        )
    os.replace(tmp, dest)
