"""What every profile receives, and the helpers they share for results, statistics and prompts."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.bench.client import ChatClient, Interrupted, ServerError
from kubeinfer.bench.load.records import RecordSink
from kubeinfer.bench.load.text import filler_text as filler_text
from kubeinfer.engines.llamacpp_server import read_process_memory
from kubeinfer.resources.benchmark_matrix import ProfileResult, Profiles

#: Room left for the tokens a chat template adds and for tokenizer drift when text is re-tokenized.
TEMPLATE_MARGIN_TOKENS = 64


def _no_log(_message: str) -> None:
    return None


#: Reads (RSS, peak RSS, swap) of the model server in bytes; None when this reading failed.
MemoryProbe = Callable[[], tuple[int, int, int] | None]


@dataclass
class ProfileContext:
    """One running server and the thresholds to judge it by.

    Server memory comes from `memory_probe` (RSS, peak RSS, swap in bytes): on one machine it reads
    `/proc/<server_pid>`, in a cluster the server's supervisor (`kubeinfer engine serve`) answers it; without
    either, memory metrics are None. `server_pid` also feeds the stress profile's host vitals.
    `max_context` is the most prompt plus generated tokens one slot accepts.
    Setting `stop` (Ctrl-C) makes a profile return promptly with status error and reason "interrupted".
    `records`, when set, receives every request the interactive and batch profiles sent (`bench run` writes
    them to `requests/<model>_<quant>_<profile>.jsonl`).
    """

    base_url: str
    model: str
    profiles: Profiles
    quick: bool = False
    server_pid: int | None = None
    max_context: int = 4096
    stop: threading.Event = field(default_factory=threading.Event)
    log: Callable[[str], None] = _no_log
    memory_probe: MemoryProbe | None = None
    records: RecordSink | None = None

    def read_memory(self) -> tuple[int, int, int] | None:
        """(RSS, peak RSS, swap) of the server in bytes, or None when it cannot be measured from here."""
        if self.memory_probe is not None:
            return self.memory_probe()
        if self.server_pid is not None:
            return read_process_memory(self.server_pid)
        return None

    def client(self, stop: threading.Event | None = None) -> ChatClient:
        return ChatClient(self.base_url, self.model, stop=stop or self.stop)


def interrupted(metrics: dict[str, Any] | None = None) -> ProfileResult:
    return ProfileResult(status="error", metrics=metrics or {}, reason="interrupted")


def server_failed(exc: ServerError, metrics: dict[str, Any] | None = None) -> ProfileResult:
    return ProfileResult(status="error", metrics=metrics or {}, reason=f"server error: {exc}")


def judged(metrics: dict[str, Any], failures: list[str]) -> ProfileResult:
    """Passed when no threshold failed; otherwise failed with every failure in the reason."""
    if failures:
        return ProfileResult(status="failed", metrics=metrics, reason="; ".join(failures))
    return ProfileResult(status="passed", metrics=metrics)


def guarded(run: Callable[[ProfileContext], ProfileResult]) -> Callable[[ProfileContext], ProfileResult]:
    """Turn an interruption or a server error anywhere in a profile into its error result."""

    def wrapper(ctx: ProfileContext) -> ProfileResult:
        try:
            return run(ctx)
        except Interrupted:
            return interrupted()
        except ServerError as exc:
            return server_failed(exc)

    wrapper.__name__ = run.__name__
    wrapper.__doc__ = run.__doc__
    return wrapper


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def percent_change(before: float | None, after: float | None) -> float | None:
    """(after - before) / before in percent; None when either is missing or before is zero."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before * 100


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def fit_prompt(client: ChatClient, text: str, tokens: int) -> str:
    """`text` cut to about `tokens` tokens, measured with the server's own tokenizer."""
    ids = client.tokenize(text)
    return text if len(ids) <= tokens else client.detokenize(ids[: max(tokens, 1)])
