"""Human timestamps: "3 minutes ago" (or "in 23 hours") with the exact UTC time on hover, like GitHub's.

Values come as epoch seconds (batches, files, models) or ISO 8601 text (a report's `timestamp`, a cluster
object's `creationTimestamp`); anything else is shown as it is rather than guessed at.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from markupsafe import Markup

#: Up to this age a time reads as relative; older ones read as a date, as GitHub does after a month.
RELATIVE_LIMIT_SECONDS = 30 * 86400

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def to_epoch(value: object) -> float | None:
    """Epoch seconds of a number or an ISO 8601 string (naive means UTC); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def absolute(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def relative(epoch: float, now: float) -> str:
    """`just now`, `5 seconds ago`, `1 minute ago`, `in 23 hours`; a date once more than 30 days away."""
    delta = now - epoch
    if abs(delta) >= RELATIVE_LIMIT_SECONDS:
        return time.strftime("on %Y-%m-%d", time.gmtime(epoch))
    if abs(delta) < 2:
        return "just now"
    name, size = next((name, size) for name, size in _UNITS if abs(delta) >= size)
    count = int(abs(delta) // size)
    amount = f"{count} {name}{'' if count == 1 else 's'}"
    return f"{amount} ago" if delta > 0 else f"in {amount}"


def human_time(value: object, now: float | None = None) -> Markup:
    """A `<time>` element: relative text, the exact UTC time as its title, the ISO value as `datetime`."""
    if value is None or value == "":
        return Markup("–")
    epoch = to_epoch(value)
    if epoch is None:
        return Markup("{}").format(value)
    iso = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    shown = relative(epoch, time.time() if now is None else now)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, absolute(epoch), shown)
