"""Evict a model file from the page cache before a cold load, and tell how much of it is still resident.

Eviction is best effort: `posix_fadvise(POSIX_FADV_DONTNEED)` needs no privileges but leaves pages that
another process has mapped (a second llama-server serving the same file) or that are dirty, and on tmpfs
there is nothing to evict. `resident_fraction` (mincore) says how cold the next load really is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

_PROT_READ = 0x1
_MAP_SHARED = 0x01
_MAP_FAILED = ctypes.c_void_p(-1).value


def evict(path: Path) -> None:
    """Ask the kernel to drop the file's cached pages; raises OSError when the file cannot be opened."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def resident_fraction(path: Path) -> float:
    """Share (0-1) of the file's pages in the page cache; mapping it to ask touches no page."""
    size = path.stat().st_size
    if size == 0:
        return 0.0
    libc = _libc()
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if address in (None, _MAP_FAILED):
            error = ctypes.get_errno()
            raise OSError(error, f"cannot map {path}: {os.strerror(error)}")
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vector = ctypes.create_string_buffer(pages)
            if libc.mincore(address, size, vector) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"mincore on {path}: {os.strerror(error)}")
            resident = sum(byte & 1 for byte in vector.raw[:pages])
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return resident / pages


def evict_for_cold_load(path: Path) -> str | None:
    """Evict `path` before a cold load; a line saying why the load is not fully cold, or None when it is."""
    try:
        evict(path)
        left = resident_fraction(path)
    except OSError as exc:
        return f"page cache not evicted ({exc}); the cold load is timed as it is"
    if left > 0:
        return f"{left:.0%} of {path.name} stayed in the page cache (mapped elsewhere?)"
    return None
