"""Metrics of the gateway's own model server: restarts by the watchdog, by reason."""

from __future__ import annotations

from prometheus_client import Counter

#: Why the watchdog replaced the server; the `reason` label takes only these values.
RESTART_REASONS = ("exited", "hung", "start_timeout", "spawn_failed", "requested")

RESTARTS = Counter(
    "kubeinfer_engine_restarts_total",
    "Restarts of the gateway's own llama-server by its watchdog, by reason",
    ["reason"],
)
