"""The five use-case profiles, each a function from a ProfileContext to an unrated ProfileResult."""

from __future__ import annotations

from collections.abc import Callable

from kubeinfer.bench.profiles import batch, interactive, long_context, quality, stress
from kubeinfer.bench.profiles.base import ProfileContext
from kubeinfer.resources.benchmark_matrix import ProfileResult

ProfileRunner = Callable[[ProfileContext], ProfileResult]

PROFILE_RUNNERS: dict[str, ProfileRunner] = {
    "interactive": interactive.run,
    "long_context": long_context.run,
    "batch": batch.run,
    "quality": quality.run,
    "stress": stress.run,
}

__all__ = ["PROFILE_RUNNERS", "ProfileContext", "ProfileRunner"]
