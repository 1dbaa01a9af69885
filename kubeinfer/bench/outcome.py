"""A cell's status from its profiles' results."""

from __future__ import annotations

from typing import Any

from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult, Rule

#: The profile whose failure marks the whole cell failed (rule 3, performance threshold).
CRITICAL_PROFILE = "interactive"


def judge_cell(profiles: dict[str, ProfileResult]) -> tuple[CellStatus, Rule | None, str | None]:
    """failed if interactive missed a critical threshold (TTFT, tokens/s), partial if any profile fell short
    otherwise (a rated-poor interactive run included), else passed."""
    critical = profiles.get(CRITICAL_PROFILE)
    if critical is not None and critical.status == "failed" and critical.rating != "poor":
        return (
            CellStatus.failed,
            Rule.performance_threshold,
            critical.reason or "missed the interactive thresholds",
        )
    short = [name for name, result in profiles.items() if result.status in ("failed", "error")]
    if short:
        details = "; ".join(f"{name}: {profiles[name].reason or profiles[name].status}" for name in short)
        return CellStatus.partial, None, details
    return CellStatus.passed, None, None


#: Profiles that put request load on the server and report a sustainable level.
LOAD_PROFILES = ("interactive", "batch")


def sustainable_level(profiles: dict[str, ProfileResult]) -> dict[str, Any] | None:
    """The best sustainable level (most output tokens/s) across the load profiles that swept; when none
    swept, across their single levels. None when no profile reported one."""
    found = [
        level
        for name in LOAD_PROFILES
        if (result := profiles.get(name)) is not None and isinstance(level := result.metrics.get("sustainable"), dict)
    ]
    swept = [level for level in found if level.get("swept")]
    candidates = swept or found
    return max(candidates, key=lambda level: level.get("output_tokens_per_second") or 0.0, default=None)


def record_sustainable(result: CellResult) -> CellResult:
    """Set the cell's `max_sustainable_*` figures from its profiles (cost per token is computed from them),
    with the 95% intervals of the level they were read from (none from a report made before levels had them)."""
    level = sustainable_level(result.profiles)
    if level is not None:
        result.max_sustainable_rps = level.get("rps")
        result.max_sustainable_output_tokens_per_second = level.get("output_tokens_per_second")
        result.max_sustainable_input_tokens_per_second = level.get("input_tokens_per_second")
        result.max_sustainable_rps_interval = level.get("rps_interval")
        result.max_sustainable_output_tokens_per_second_interval = level.get("output_tokens_per_second_interval")
        result.max_sustainable_input_tokens_per_second_interval = level.get("input_tokens_per_second_interval")
    return result
