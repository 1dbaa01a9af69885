"""Status conditions in the standard shape (type, status, reason, message, lastTransitionTime, observedGeneration)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: The API server refuses longer condition messages than this would allow with room to spare.
MESSAGE_LIMIT = 2000


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool | str, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """One condition; `ok` is True/False or the status string itself ("True", "False", "Unknown")."""
    status = ok if isinstance(ok, str) else "True" if ok else "False"
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "lastTransitionTime": now(),
        "observedGeneration": generation,
    }
