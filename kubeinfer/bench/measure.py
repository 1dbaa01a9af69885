"""Run a list of profiles against one live server; shared by the local executor and in-cluster runner pods."""

from __future__ import annotations

from collections.abc import Callable

from kubeinfer.bench.profiles import PROFILE_RUNNERS
from kubeinfer.bench.profiles.base import ProfileContext
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.resources.benchmark_matrix import ProfileResult


def measure_profiles(
    context: ProfileContext,
    names: list[str],
    rate: bool = True,
    server_alive: Callable[[], bool] = lambda: True,
    death_note: Callable[[], str] = lambda: "",
) -> dict[str, ProfileResult]:
    """Each profile in order; a server that dies ends the list with an error naming the profile."""
    results: dict[str, ProfileResult] = {}
    for name in names:
        if context.stop.is_set():
            raise KeyboardInterrupt
        context.log(f"{context.model}: {name}")
        outcome = PROFILE_RUNNERS[name](context)
        if not server_alive():
            reason = f"llama-server died during {name}"
            if note := death_note():
                reason = f"{reason}:\n{note}"
            outcome = ProfileResult(status="error", metrics=outcome.metrics, reason=reason)
        results[name] = rate_profile(name, outcome, context.profiles) if rate else outcome
        if not server_alive():
            break
    if context.stop.is_set():  # the last profile may have been cut short by the stop
        raise KeyboardInterrupt
    return results
