"""Which validated batches of a project may start their workers: a per-project limit, then priority.

So one user's 100k-line batch does not starve everyone: at most `limit` batches of a project run workers
at once, and among the waiting ones the highest `priority` goes first, then the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    name: str
    project: str
    priority: int
    created_at: int
    #: Workers started and still running.
    running: bool
    #: Validated, workers not started yet.
    waiting: bool


def may_start(name: str, candidates: list[Candidate], limit: int) -> bool:
    """True when batch `name` is among the waiting batches its project's free places admit; limit 0 = none."""
    me = next((c for c in candidates if c.name == name), None)
    if me is None:
        return False
    peers = [c for c in candidates if c.project == me.project]
    queue = sorted((c for c in peers if c.waiting), key=lambda c: (-c.priority, c.created_at, c.name))
    if not limit:
        return True
    free = limit - sum(c.running for c in peers)
    return free > 0 and me in queue[:free]
