"""Host vitals while a model serves: CPU temperature and frequency, memory, swap, and one process's footprint.

Every reading is optional: containers and VMs often expose no thermal sensors and no cpufreq, and a remote
server has no local process to read. Absent readings are None, never a guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from kubeinfer.engines.llamacpp_server import read_process_memory

THERMAL_ROOT = Path("/sys/class/thermal")
CPU_ROOT = Path("/sys/devices/system/cpu")
#: psutil sensor groups that describe the CPU package or cores (Intel, AMD, ARM boards, ACPI).
CPU_SENSOR_GROUPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")


@dataclass(frozen=True)
class Vitals:
    t: float
    temperature_celsius: float | None
    cpu_mhz: float | None
    memory_used_bytes: int
    memory_available_bytes: int
    swap_used_bytes: int
    throttle_count: int | None
    rss_bytes: int | None
    peak_rss_bytes: int | None
    swap_bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_temperature_celsius() -> float | None:
    """The hottest CPU sensor, from psutil or else /sys/class/thermal; None when the host exposes none."""
    return _psutil_temperature() or _thermal_zone_temperature(THERMAL_ROOT)


def _psutil_temperature() -> float | None:
    sensors_temperatures = getattr(psutil, "sensors_temperatures", None)
    if sensors_temperatures is None:
        return None
    try:
        groups = sensors_temperatures()
    except (OSError, RuntimeError):
        return None
    preferred = [g for name, g in groups.items() if name in CPU_SENSOR_GROUPS] or list(groups.values())
    readings = [s.current for group in preferred for s in group if s.current and s.current > 0]
    return max(readings) if readings else None


def _thermal_zone_temperature(root: Path) -> float | None:
    readings: list[float] = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if millidegrees > 0:
            readings.append(millidegrees / 1000)
    return max(readings) if readings else None


def cpu_frequency_mhz() -> float | None:
    """Mean current CPU frequency from cpufreq (sysfs) or psutil; None when neither reports one."""
    return _sysfs_frequency_mhz(CPU_ROOT) or _psutil_frequency_mhz()


def _sysfs_frequency_mhz(root: Path) -> float | None:
    readings: list[float] = []
    for path in root.glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            readings.append(int(path.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return sum(readings) / len(readings) if readings else None


def _psutil_frequency_mhz() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (OSError, RuntimeError, NotImplementedError):
        return None
    return float(freq.current) if freq is not None and freq.current > 0 else None


def throttle_count(root: Path = CPU_ROOT) -> int | None:
    """Total thermal-throttle events the kernel counted on all cores; None when it does not count them."""
    paths = list(root.glob("cpu[0-9]*/thermal_throttle/*_throttle_count"))
    if not paths:
        return None
    total = 0
    for path in paths:
        try:
            total += int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return total


def read_vitals(pid: int | None = None, t: float = 0.0) -> Vitals:
    """One reading of the host, plus `pid`'s memory when given (None fields for a remote server)."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    rss = peak = process_swap = None
    if pid is not None:
        rss, peak, process_swap = read_process_memory(pid)
    return Vitals(
        t=t,
        temperature_celsius=cpu_temperature_celsius(),
        cpu_mhz=cpu_frequency_mhz(),
        memory_used_bytes=int(memory.total - memory.available),
        memory_available_bytes=int(memory.available),
        swap_used_bytes=int(swap.used),
        throttle_count=throttle_count(),
        rss_bytes=rss,
        peak_rss_bytes=peak,
        swap_bytes=process_swap,
    )


class VitalsSampler(threading.Thread):
    """Reads vitals every `interval` seconds (first reading at once) until `stop()`.

    `on_sample` runs in the sampler's thread after each reading, so a caller can react to a limit (for
    example abort on temperature) without polling the samples list.
    """

    def __init__(
        self,
        pid: int | None = None,
        interval: float = 30.0,
        on_sample: Callable[[Vitals], None] | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"vitals-sampler-{pid}")
        self.pid = pid
        self.interval = interval
        self.on_sample = on_sample
        self.samples: list[Vitals] = []
        self._stop_event = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> Vitals:
        vitals = read_vitals(self.pid, time.monotonic() - self._start)
        self.samples.append(vitals)
        if self.on_sample is not None:
            self.on_sample(vitals)
        return vitals

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop sampling and wait for the thread to finish its current reading."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()
