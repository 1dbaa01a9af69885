"""A streamed request's decode rate: timed by the client, never faster than the server generated.

On a kind node starved of CPU the measure pod read whole bursts of chunks at once, and the interactive profile
reported 84,935 tokens/s for a model the server decoded at about 30; that cell was named the overall best. The
client's clock stays the measure where it can time anything; the server's own rate replaces it only where the
arrival span is too short to be decoding.
"""

from __future__ import annotations

import pytest

from kubeinfer.bench.client import BURST_FACTOR, ServerTimings, StreamResult


def timings(tokens: int, per_second: float) -> ServerTimings:
    return ServerTimings(
        prompt_n=300,
        prompt_ms=500.0,
        predicted_n=tokens,
        predicted_ms=tokens / per_second * 1000,
        predicted_per_second=per_second,
    )


def stream(chunk_times: list[float], server_rate: float | None) -> StreamResult:
    tokens = len(chunk_times)
    return StreamResult(
        ttft_seconds=chunk_times[0],
        chunk_times=chunk_times,
        completion_tokens=tokens,
        timings=timings(tokens, server_rate) if server_rate else None,
    )


def test_steady_chunks_are_timed_by_the_client() -> None:
    chunks = [0.5 + i * 0.025 for i in range(65)]  # 40 tokens/s as received
    assert stream(chunks, server_rate=41.0).tokens_per_second == pytest.approx(40.0)


def test_a_client_slower_than_the_server_reports_what_it_received() -> None:
    """Delivery slower than generation is what a reader sees: it stands."""
    chunks = [0.5 + i * 0.05 for i in range(65)]  # 20 tokens/s as received
    assert stream(chunks, server_rate=40.0).tokens_per_second == pytest.approx(20.0)


def test_a_burst_of_chunks_reports_the_servers_rate() -> None:
    chunks = [2.0 + i * 0.00001 for i in range(65)]  # all read at once: 100,000 tokens/s by arrival
    assert stream(chunks, server_rate=30.0).tokens_per_second == pytest.approx(30.0)


def test_chunks_with_no_span_at_all_report_the_servers_rate() -> None:
    assert stream([2.0] * 65, server_rate=30.0).tokens_per_second == pytest.approx(30.0)


def test_the_client_may_read_a_little_faster_than_the_server_reports() -> None:
    """The client's span covers one interval fewer than the server's, and both clocks jitter."""
    rate = 30.0 * (BURST_FACTOR - 0.02)
    chunks = [0.5 + i / rate for i in range(65)]
    assert stream(chunks, server_rate=30.0).tokens_per_second == pytest.approx(rate)


def test_without_the_servers_timings_the_client_rate_stands() -> None:
    """Engines that send no `timings` (vLLM, an external OpenAI endpoint) keep the client's measure."""
    chunks = [0.5 + i * 0.001 for i in range(65)]
    assert stream(chunks, server_rate=None).tokens_per_second == pytest.approx(1000.0)
    assert stream([2.0] * 65, server_rate=None).tokens_per_second is None
