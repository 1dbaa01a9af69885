"""Send one load level: a closed loop at a concurrency, or an open loop of Poisson arrivals at a rate.

Closed loop: `concurrency` workers, each sending its next conversation as soon as the last one ended.
Open loop: conversations start at exponentially spaced times (a Poisson process of `rate` requests per
second; a conversation of several turns counts its turns), whether or not earlier ones finished, so a
server that cannot keep up builds a queue. Every request becomes a RequestRecord.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kubeinfer.bench.client import ChatClient, Interrupted, Message, ServerError, StreamResult
from kubeinfer.bench.load.shapes import Conversation

#: Most requests in flight at once in an open loop; arrivals beyond it wait (and the queue shows it).
MAX_IN_FLIGHT = 256


@dataclass(frozen=True)
class Level:
    kind: Literal["concurrency", "rate"]
    value: float

    @property
    def label(self) -> str:
        return f"concurrency {self.value:g}" if self.kind == "concurrency" else f"rate {self.value:g}/s"


@dataclass
class RequestRecord:
    """One request as the client saw it; seconds are since the level started unless named otherwise.

    `queue_wait_seconds` is the time to first token less the server's own prompt processing time: the wait
    for a free slot plus HTTP and templating. `input_tokens` and `output_tokens` are the server's counts of
    what was actually sent and generated; `cached_tokens` the prompt tokens it reused from its cache.
    """

    profile: str
    level: str
    conversation: int
    turn: int
    requested_input_tokens: int
    requested_output_tokens: int
    prefixed: bool
    scheduled_seconds: float | None
    sent_seconds: float
    ttft_seconds: float | None = None
    e2e_seconds: float | None = None
    itl_seconds: list[float] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    server_prompt_seconds: float | None = None
    server_tokens_per_second: float | None = None
    queue_wait_seconds: float | None = None
    tokens_per_second: float | None = None
    variance_percent: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.ttft_seconds is not None

    @property
    def finished_seconds(self) -> float:
        return self.sent_seconds + (self.e2e_seconds or 0.0)

    @property
    def mean_itl_seconds(self) -> float | None:
        return math.fsum(self.itl_seconds) / len(self.itl_seconds) if self.itl_seconds else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["itl_seconds"] = [round(gap, 6) for gap in self.itl_seconds]
        return data


@dataclass(frozen=True)
class RequestOptions:
    temperature: float
    cache_prompt: bool
    seed: int


@dataclass
class LevelRun:
    level: Level
    records: list[RequestRecord]
    #: Realized Poisson arrival times (open loop), for comparing the rate offered with the rate served.
    arrivals: list[float] = field(default_factory=list)


AfterRequest = Callable[[RequestRecord], None]


def _complete(record: RequestRecord, result: StreamResult) -> None:
    record.ttft_seconds = result.ttft_seconds
    record.e2e_seconds = result.total_seconds
    record.itl_seconds = result.inter_token_intervals
    record.input_tokens = result.prompt_tokens
    record.output_tokens = result.generated_tokens
    record.tokens_per_second = result.tokens_per_second
    record.variance_percent = result.variance_percent
    if (timings := result.timings) is not None:
        record.server_prompt_seconds = timings.prompt_ms / 1000
        record.server_tokens_per_second = timings.predicted_per_second
        if result.prompt_tokens is not None:
            record.cached_tokens = max(0, result.prompt_tokens - timings.prompt_n)
        if result.ttft_seconds is not None:
            record.queue_wait_seconds = max(0.0, result.ttft_seconds - timings.prompt_ms / 1000)
    if result.ttft_seconds is None:
        record.error = "no tokens were streamed"


class LevelDriver:
    """Sends conversations for one profile; `messages[i]` holds conversation i's user messages, prebuilt."""

    def __init__(
        self,
        client: ChatClient,
        profile: str,
        options: RequestOptions,
        after_request: AfterRequest | None = None,
    ) -> None:
        self.client = client
        self.profile = profile
        self.options = options
        self.after_request = after_request
        self._lock = threading.Lock()

    def run(self, level: Level, conversations: list[Conversation], messages: list[list[Message]]) -> LevelRun:
        """Every conversation at `level`; raises Interrupted when the client's stop event is set."""
        records: list[RequestRecord] = []
        started = time.monotonic()
        if level.kind == "concurrency":
            run = LevelRun(level, records)
            self._closed_loop(level, conversations, messages, started, records)
        else:
            arrivals = poisson_arrivals(
                level.value / max(1, _mean_turns(conversations)), len(conversations), self.options.seed
            )
            run = LevelRun(level, records, arrivals)
            self._open_loop(level, conversations, messages, arrivals, started, records)
        if self.client.stop.is_set():
            raise Interrupted
        if records and all(r.error is not None for r in records):
            raise ServerError(f"every request of {level.label} failed; the first: {records[0].error}")
        records.sort(key=lambda r: (r.sent_seconds, r.conversation, r.turn))
        return run

    def _closed_loop(
        self,
        level: Level,
        conversations: list[Conversation],
        messages: list[list[Message]],
        started: float,
        records: list[RequestRecord],
    ) -> None:
        pending = list(reversed(range(len(conversations))))

        def worker() -> None:
            while not self.client.stop.is_set():
                with self._lock:
                    if not pending:
                        return
                    index = pending.pop()
                self._conversation(level, conversations[index], messages[index], None, started, records)

        workers = [
            threading.Thread(target=worker, daemon=True, name=f"load-{i}")
            for i in range(min(int(level.value), len(conversations)))
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

    def _open_loop(
        self,
        level: Level,
        conversations: list[Conversation],
        messages: list[list[Message]],
        arrivals: list[float],
        started: float,
        records: list[RequestRecord],
    ) -> None:
        with ThreadPoolExecutor(max_workers=min(MAX_IN_FLIGHT, len(conversations)), thread_name_prefix="load") as pool:
            for index, at in enumerate(arrivals):
                if self.client.stop.wait(max(0.0, started + at - time.monotonic())):
                    break
                pool.submit(self._conversation, level, conversations[index], messages[index], at, started, records)

    def _conversation(
        self,
        level: Level,
        conversation: Conversation,
        user_messages: list[Message],
        scheduled: float | None,
        started: float,
        records: list[RequestRecord],
    ) -> None:
        history: list[Message] = []
        for turn, (shape, message) in enumerate(zip(conversation.turns, user_messages, strict=True)):
            history.append(message)
            sent = time.monotonic() - started
            record = RequestRecord(
                profile=self.profile,
                level=level.label,
                conversation=conversation.index,
                turn=turn,
                requested_input_tokens=shape.input_tokens,
                requested_output_tokens=shape.output_tokens,
                prefixed=shape.prefixed,
                scheduled_seconds=round(scheduled, 6) if scheduled is not None and turn == 0 else None,
                sent_seconds=sent,
            )
            try:
                result = self.client.stream_chat(
                    history,
                    shape.output_tokens,
                    temperature=self.options.temperature,
                    seed=self.options.seed + conversation.index * 64 + turn,
                    cache_prompt=self.options.cache_prompt,
                    ignore_eos=True,
                )
            except Interrupted:
                return
            except ServerError as exc:
                record.error = str(exc)[:500]
                record.e2e_seconds = time.monotonic() - started - sent
                self._keep(record, records)
                return
            _complete(record, result)
            self._keep(record, records)
            history.append({"role": "assistant", "content": result.text})

    def _keep(self, record: RequestRecord, records: list[RequestRecord]) -> None:
        with self._lock:
            records.append(record)
        if self.after_request is not None:
            self.after_request(record)


def _mean_turns(conversations: list[Conversation]) -> float:
    return sum(len(c.turns) for c in conversations) / len(conversations) if conversations else 1.0


def poisson_arrivals(rate: float, count: int, seed: int) -> list[float]:
    """Start times of `count` arrivals of a Poisson process of `rate` per second, the first at 0."""
    rng = random.Random(seed)
    times, now = [], 0.0
    for _ in range(count):
        times.append(now)
        now += rng.expovariate(rate)
    return times
