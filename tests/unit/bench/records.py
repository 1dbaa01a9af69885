"""Request records built by hand, for the load tests that need no server."""

from __future__ import annotations

from kubeinfer.bench.load.driver import RequestRecord


def record(
    sent: float,
    ttft: float = 0.1,
    e2e: float = 1.0,
    gaps: tuple[float, ...] = (0.05, 0.05),
    output: int = 3,
    queue: float = 0.0,
    error: str | None = None,
    index: int = 0,
) -> RequestRecord:
    """One interactive request of 100 input tokens, sent at `sent`; a failed one (`error`) has no first token."""
    return RequestRecord(
        profile="interactive",
        level="test",
        conversation=index,
        turn=0,
        requested_input_tokens=100,
        requested_output_tokens=output,
        prefixed=False,
        scheduled_seconds=None,
        sent_seconds=sent,
        ttft_seconds=None if error else ttft,
        e2e_seconds=e2e,
        itl_seconds=list(gaps),
        input_tokens=100,
        output_tokens=output,
        queue_wait_seconds=queue,
        error=error,
    )
