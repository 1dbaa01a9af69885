"""A cell's status from its profiles' results."""

from __future__ import annotations

from kubeinfer.resources.benchmark_matrix import CellStatus, ProfileResult, Rule

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
