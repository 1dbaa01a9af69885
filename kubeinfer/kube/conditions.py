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


def merged(current: list[dict[str, Any]] | None, *updates: dict[str, Any]) -> list[dict[str, Any]]:
    """`current` with each update in place of the condition of its type (appended when new).

    A status patch replaces the whole list, so a writer of one condition must carry the others along.
    An update that keeps a condition's status keeps its lastTransitionTime, as the conventions ask.
    """
    result = [dict(c) for c in current or []]
    for update in updates:
        at = next((i for i, c in enumerate(result) if c.get("type") == update["type"]), None)
        if at is None:
            result.append(update)
            continue
        if result[at].get("status") == update["status"] and result[at].get("lastTransitionTime"):
            update = update | {"lastTransitionTime": result[at]["lastTransitionTime"]}
        result[at] = update
    return result
