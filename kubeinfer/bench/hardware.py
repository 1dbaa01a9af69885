"""A description of the machine a matrix ran on, for report metadata."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import psutil


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_name(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def describe_host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "hardware": {
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "os": os_name(),
            "kernel": platform.release(),
        },
    }
