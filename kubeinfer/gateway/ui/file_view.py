"""What the file page shows of a file's content: its first lines, read no further than needed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

PREVIEW_BYTES = 16 * 1024
PREVIEW_LINES = 20


@dataclass(frozen=True)
class Preview:
    lines: list[str]
    truncated: bool


def preview(chunks: Iterator[bytes], total_bytes: int) -> Preview:
    """The first PREVIEW_LINES lines within PREVIEW_BYTES, decoded as UTF-8 (bad bytes shown as �)."""
    head = bytearray()
    try:
        for chunk in chunks:
            head += chunk
            if len(head) >= PREVIEW_BYTES or head.count(b"\n") > PREVIEW_LINES:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    lines = bytes(head[:PREVIEW_BYTES]).decode("utf-8", "replace").splitlines()
    shown = lines[:PREVIEW_LINES]
    truncated = len(lines) > PREVIEW_LINES or total_bytes > min(len(head), PREVIEW_BYTES)
    return Preview(shown, truncated)
