"""What the models page shows of one ModelInstall, formatted once for the page and for its live updates."""

from __future__ import annotations

from typing import Any

from kubeinfer.cluster.model_installs import InstallSummary
from kubeinfer.gateway.ui.render import PHASE_CLASS, format_bytes


def install_progress(item: InstallSummary) -> str:
    """`12.0 MiB of 98.2 MiB (12 %)` while the operator downloads; empty otherwise."""
    if item.phase != "Downloading" or item.bytes_done is None:
        return ""
    if not item.bytes_total:
        return f"{format_bytes(item.bytes_done)} downloaded"
    share = 100 * item.bytes_done / item.bytes_total
    return f"{format_bytes(item.bytes_done)} of {format_bytes(item.bytes_total)} ({share:.0f} %)"


def install_fields(item: InstallSummary) -> dict[str, Any]:
    """The JSON the models page polls for one install: display strings by field, the phase's badge class."""
    if item.replicas is None:
        serving = "not served"
    else:
        serving = " ".join([f"{item.ready_replicas}/{item.replicas} ready", *item.endpoints])
    return {
        "name": item.name,
        "phase_class": PHASE_CLASS.get(item.phase, ""),
        "fields": {
            "phase": item.phase,
            "progress": install_progress(item),
            "size": f"{format_bytes(item.size_bytes)}" if item.size_bytes is not None else "–",
            "serving": serving,
            "message": item.message or "",
        },
    }
