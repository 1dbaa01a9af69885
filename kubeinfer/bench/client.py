"""A small synchronous client for an OpenAI-compatible chat endpoint that times every streamed token.

Requests run in a worker thread so that a `stop` event interrupts them promptly: a blocked socket read
cannot be woken from another thread, but the caller can stop waiting for it. The worker also checks the
event between chunks and closes the stream, which makes llama-server cancel the generation.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
Message = dict[str, str]

#: Fixed so that the quality prompts get the same answers for every quantization.
DEFAULT_SEED = 1234
#: A received decode rate this far above the server's own is chunks read in a burst, not decoding (tokens_per_second).
BURST_FACTOR = 1.1


class Interrupted(Exception):
    """The stop event was set while a request was in flight; `partial` holds what a stream had received."""

    def __init__(self, partial: StreamResult | None = None) -> None:
        super().__init__("interrupted")
        self.partial = partial


class ServerError(RuntimeError):
    """The server answered with an error status or a malformed stream."""


@dataclass(frozen=True)
class ServerTimings:
    """llama-server's own measurement of one request (its `timings` object)."""

    prompt_n: int
    prompt_ms: float
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float

    @classmethod
    def from_json(cls, data: Any) -> ServerTimings | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                prompt_n=int(data["prompt_n"]),
                prompt_ms=float(data["prompt_ms"]),
                predicted_n=int(data["predicted_n"]),
                predicted_ms=float(data["predicted_ms"]),
                predicted_per_second=float(data["predicted_per_second"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class StreamResult:
    """One streamed completion; times are seconds since the request was sent."""

    ttft_seconds: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    text: str = ""
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    timings: ServerTimings | None = None
    total_seconds: float = 0.0
    interrupted: bool = False

    @property
    def generated_tokens(self) -> int:
        """Tokens generated: the server's count when it sent usage, else the content chunks seen."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.chunk_times)

    @property
    def tokens_per_second(self) -> float | None:
        """Decode rate over the tokens after the first, as the client received them, so prompt processing does
        not dilute it.

        Never faster than the server generated them, where it says (llama-server's `timings`): a client or an
        HTTP thread starved of CPU reads a burst of chunks at once, and their arrival span then times nothing
        (a starved kind node read 84,935 tokens/s this way). Above BURST_FACTOR x the server's own rate, the
        server's rate is the one reported.
        """
        if len(self.chunk_times) < 2:
            return None
        span = self.chunk_times[-1] - self.chunk_times[0]
        received = (self.generated_tokens - 1) / span if span > 0 else None
        generated = self.timings.predicted_per_second if self.timings else None
        if generated and generated > 0 and (received is None or received > BURST_FACTOR * generated):
            return generated
        return received

    @property
    def inter_token_intervals(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:], strict=False)]

    @property
    def variance_percent(self) -> float | None:
        """Coefficient of variation of the inter-token intervals, in percent."""
        return coefficient_of_variation(self.inter_token_intervals)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    completion_tokens: int | None
    timings: ServerTimings | None
    seconds: float


def coefficient_of_variation(values: list[float]) -> float | None:
    """Sample standard deviation over mean, in percent; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean * 100 if mean > 0 else None


class ChatClient:
    """Talks to `<base_url>/v1/chat/completions` (and llama-server's `/tokenize`, `/detokenize`)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        stop: threading.Event | None = None,
        timeout_seconds: float = 600.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.stop = stop or threading.Event()
        self.poll_seconds = poll_seconds
        # An open-loop load level keeps up to 256 requests in flight through one client.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stream_chat(
        self,
        messages: list[Message],
        max_tokens: int,
        *,
        temperature: float = 0.8,
        seed: int | None = None,
        cache_prompt: bool = False,
        ignore_eos: bool = False,
    ) -> StreamResult:
        """Stream one chat completion, timing each content chunk.

        `cache_prompt=False` makes llama-server process the whole prompt every time, so repeated runs
        measure the same work; `ignore_eos` makes every run generate exactly `max_tokens`.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": cache_prompt,
        }
        if seed is not None:
            body["seed"] = seed
        if ignore_eos:
            body["ignore_eos"] = True
        result = StreamResult()
        try:
            return self._interruptible(lambda: self._stream(body, result))
        except Interrupted:
            result.interrupted = True
            raise Interrupted(result) from None

    def complete(
        self, messages: list[Message], max_tokens: int, *, temperature: float = 0.0, seed: int = DEFAULT_SEED
    ) -> Completion:
        """One non-streamed, reproducible completion (temperature 0, fixed seed by default)."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }

        def call() -> Completion:
            started = time.monotonic()
            data = self._post_json("/v1/chat/completions", body)
            choice = (data.get("choices") or [{}])[0]
            return Completion(
                text=str((choice.get("message") or {}).get("content") or ""),
                finish_reason=choice.get("finish_reason"),
                completion_tokens=(data.get("usage") or {}).get("completion_tokens"),
                timings=ServerTimings.from_json(data.get("timings")),
                seconds=time.monotonic() - started,
            )

        return self._interruptible(call)

    def tokenize(self, text: str) -> list[int]:
        data = self._interruptible(lambda: self._post_json("/tokenize", {"content": text}))
        return [int(t) for t in data.get("tokens", [])]

    def detokenize(self, tokens: list[int]) -> str:
        data = self._interruptible(lambda: self._post_json("/detokenize", {"tokens": tokens}))
        return str(data.get("content", ""))

    def apply_template(self, messages: list[Message]) -> str:
        """The prompt text the server's chat template makes of `messages` (llama-server's /apply-template)."""
        data = self._interruptible(lambda: self._post_json("/apply-template", {"messages": messages}))
        return str(data.get("prompt", ""))

    def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise ServerError(f"{path}: {exc}") from exc
        if response.status_code >= 400:
            raise ServerError(f"{path}: HTTP {response.status_code}: {response.text[:500]}")
        data = response.json()
        if not isinstance(data, dict):
            raise ServerError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data

    def _stream(self, body: dict[str, Any], result: StreamResult) -> StreamResult:
        started = time.monotonic()
        try:
            with self._http.stream("POST", f"{self.base_url}/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ServerError(f"HTTP {response.status_code}: {response.text[:500]}")
                for event in _sse_events(response.iter_lines()):
                    if self.stop.is_set():
                        result.interrupted = True
                        break
                    _absorb(result, event, time.monotonic() - started)
        except httpx.HTTPError as exc:
            raise ServerError(f"stream failed: {exc}") from exc
        result.total_seconds = time.monotonic() - started
        return result

    def _interruptible(self, call: Callable[[], T]) -> T:
        """Run `call` in a daemon thread; raise Interrupted as soon as the stop event is set."""
        if self.stop.is_set():
            raise Interrupted
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, daemon=True, name="chat-request").start()
        while not done.wait(self.poll_seconds):
            if self.stop.is_set():
                raise Interrupted
        if "error" in outcome:
            raise outcome["error"]
        value: T = outcome["value"]
        if isinstance(value, StreamResult) and value.interrupted:
            raise Interrupted
        return value


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line.removeprefix("data:").strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ServerError(f"malformed stream chunk: {payload[:200]}") from exc
        if isinstance(event, dict):
            if "error" in event:
                raise ServerError(f"server error mid-stream: {event['error']}")
            yield event


def _absorb(result: StreamResult, event: dict[str, Any], elapsed: float) -> None:
    for choice in event.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if content:
            if result.ttft_seconds is None:
                result.ttft_seconds = elapsed
            result.chunk_times.append(elapsed)
            result.text += content
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    usage = event.get("usage")
    if isinstance(usage, dict):
        result.completion_tokens = usage.get("completion_tokens")
        result.prompt_tokens = usage.get("prompt_tokens")
    timings = ServerTimings.from_json(event.get("timings"))
    if timings is not None:
        result.timings = timings
