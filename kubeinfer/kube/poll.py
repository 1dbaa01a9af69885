"""Back-off between checks of something slow in the cluster (a Job, a rollout, a server coming up)."""

from __future__ import annotations


class PollInterval:
    """Waits between checks of something slow: `first`, then half as long again each time, up to `most`."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = first, max(first, most)
        self._next = first

    def __call__(self) -> float:
        value = self._next
        self._next = min(self._next * 1.5, self.most)
        return value

    def reset(self) -> None:
        self._next = self.first
