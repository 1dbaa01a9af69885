"""Host vitals readers and the sampler, against a real child process."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeinfer.bench import vitals
from kubeinfer.bench.vitals import Vitals, VitalsSampler, read_vitals


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_read_vitals_reports_a_live_process_memory(child: subprocess.Popen[bytes]) -> None:
    reading = read_vitals(child.pid)
    assert reading.rss_bytes is not None
    assert reading.peak_rss_bytes is not None
    assert reading.swap_bytes is not None
    assert reading.rss_bytes > 0
    assert reading.peak_rss_bytes >= reading.rss_bytes
    assert reading.swap_bytes >= 0
    assert reading.memory_available_bytes > 0
    assert reading.memory_used_bytes > 0


def test_read_vitals_without_a_process_leaves_its_memory_unknown() -> None:
    reading = read_vitals(None)
    assert reading.rss_bytes is None
    assert reading.swap_bytes is None
    assert reading.peak_rss_bytes is None


def test_optional_readings_are_none_or_plausible() -> None:
    temperature = vitals.cpu_temperature_celsius()
    frequency = vitals.cpu_frequency_mhz()
    assert temperature is None or 0 < temperature < 150
    assert frequency is None or 100 < frequency < 10_000


def test_thermal_zones_are_read_in_millidegrees(tmp_path: Path) -> None:
    for index, millidegrees in enumerate(("41000", "67500", "garbage")):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "temp").write_text(millidegrees + "\n")
    assert vitals._thermal_zone_temperature(tmp_path) == 67.5
    assert vitals._thermal_zone_temperature(tmp_path / "missing") is None


def test_sysfs_frequency_is_the_mean_in_mhz(tmp_path: Path) -> None:
    for cpu, khz in (("cpu0", "2000000"), ("cpu1", "3000000")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_cur_freq").write_text(khz)
    assert vitals._sysfs_frequency_mhz(tmp_path) == 2500.0
    assert vitals._sysfs_frequency_mhz(tmp_path / "none") is None


def test_throttle_count_sums_cores_and_is_none_without_counters(tmp_path: Path) -> None:
    assert vitals.throttle_count(tmp_path) is None
    for cpu, count in (("cpu0", "3"), ("cpu1", "4")):
        (tmp_path / cpu / "thermal_throttle").mkdir(parents=True)
        (tmp_path / cpu / "thermal_throttle" / "core_throttle_count").write_text(count)
    assert vitals.throttle_count(tmp_path) == 7


def test_sampler_collects_until_stopped(child: subprocess.Popen[bytes]) -> None:
    seen = threading.Event()
    readings: list[Vitals] = []

    def on_sample(reading: Vitals) -> None:
        readings.append(reading)
        if len(readings) >= 3:
            seen.set()

    sampler = VitalsSampler(child.pid, interval=0.01, on_sample=on_sample)
    sampler.start()
    assert seen.wait(10), "sampler produced fewer than 3 samples"
    sampler.stop()
    assert not sampler.is_alive()
    count = len(sampler.samples)
    assert count >= 3
    assert all(s.rss_bytes for s in sampler.samples)
    assert [s.t for s in sampler.samples] == sorted(s.t for s in sampler.samples)
    assert len(sampler.samples) == count


def test_sampler_of_an_exited_process_reads_zero_memory() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    reading = VitalsSampler(proc.pid).sample()
    assert reading.rss_bytes == 0
