"""Sample one process's resident memory and thread count from /proc while a benchmark runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes and Threads from /proc/<pid>/status; empty once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            found[key] = int(value.strip())
    return found


@dataclass
class ProcSampler:
    """Reads /proc/<pid>/status every `interval` seconds in a thread; `summary()` gives peak and last values."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (monotonic time, rss bytes, threads)
    hwm_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        status = read_status(self.pid)
        if "VmRSS" in status:
            self.samples.append((time.monotonic(), status["VmRSS"], status.get("Threads", 0)))
            self.hwm_bytes = max(self.hwm_bytes, status.get("VmHWM", 0))

    def start(self) -> ProcSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name=f"proc-sampler-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def summary(self, points: int = 120) -> dict[str, Any]:
        """Peak and final RSS in MiB (peak also as the kernel's own high-water mark), threads, a thinned series."""
        if not self.samples:
            return {"samples": 0}
        start = self.samples[0][0]
        step = max(1, len(self.samples) // points)
        series = [
            {"t_seconds": round(t - start, 1), "rss_mib": round(rss / MIB, 1), "threads": threads}
            for t, rss, threads in self.samples[::step]
        ]
        return {
            "samples": len(self.samples),
            "interval_seconds": self.interval,
            "peak_rss_mib": round(max(s[1] for s in self.samples) / MIB, 1),
            "peak_rss_hwm_mib": round(self.hwm_bytes / MIB, 1),
            "final_rss_mib": round(self.samples[-1][1] / MIB, 1),
            "first_rss_mib": round(self.samples[0][1] / MIB, 1),
            "peak_threads": max(s[2] for s in self.samples),
            "final_threads": self.samples[-1][2],
            "series": series,
        }
