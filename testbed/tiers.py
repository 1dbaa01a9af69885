"""How `pytest -n N` (make test) spreads the tiers over its workers.

The whole cluster tier is one unit of work, so one worker runs it in collection order against the session's one
kind cluster (a second worker would start a second cluster of the same name), while the other workers take the unit
and engine tests a module at a time, so a module's fixtures are set up once. The tests/cluster folder comes first
in the collection, so its long unit starts at once.

pytest-xdist's own `--dist loadgroup` would do this with `xdist_group` marks, but pytest-xdist 3.8 marks a group by
renaming the test's id, which pytest 9.2 no longer allows (the marks were silently ignored); a scheduler through
xdist's `pytest_xdist_make_scheduler` hook needs neither.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

CLUSTER_TIER = "tests/cluster/"


class TierScheduling(LoadScopeScheduling):
    """xdist's load-by-scope scheduler with the cluster tier as one scope and each other module as one."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(CLUSTER_TIER):
            return CLUSTER_TIER
        return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> TierScheduling:
    return TierScheduling(config, log)
