"""Which replica gets a request: the one whose KV cache most likely holds its prompt prefix, unless it is busy.

llama-server keeps each slot's last prompt and reuses its longest common prefix, so a request whose system
prompt a replica has just evaluated skips that work there and nowhere else. The policy:

1. the replica that most recently served the request's prefix key in this process (affinity);
2. else the replica that rendezvous (highest-random-weight) hashing of the key picks among the live ones,
   so independent batch workers and the gateway send a prefix to the same replica without sharing state,
   and losing one replica moves only the keys that lived on it;
3. the least-loaded replica instead when the preferred one is quarantined, unknown, or has more than its
   fair share (requests in flight / replicas) plus `slack` in flight: affinity never piles work on one
   replica while another idles.

Pure: the pool (kubeinfer.batch.pool) owns the in-flight counts, quarantine and the affinity table.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from kubeinfer.batch.schedule import COMPLETION_PREFIX_CHARS
from kubeinfer.batch.schedule import prefix_key as system_prefix_key

#: A request without a system prompt is keyed by this many characters of its first message or prompt.
FIRST_MESSAGE_CHARS = COMPLETION_PREFIX_CHARS
#: Token-id prompts (completions) are keyed by this many leading tokens.
PREFIX_TOKENS = 64
#: Requests in flight a preferred replica may have above its fair share before the least-loaded one is used.
DEFAULT_SLACK = 2


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _leading(value: Any) -> str:
    """A prompt-like value (text, content parts, token ids, a list of prompts) cut to its shared-prefix length."""
    if isinstance(value, str):
        return value[:FIRST_MESSAGE_CHARS]
    if isinstance(value, list) and value:
        if all(isinstance(x, int) for x in value):
            return json.dumps(value[:PREFIX_TOKENS])
        first = value[0]
        return (
            _leading(first)
            if isinstance(first, str | list)
            else json.dumps(first, sort_keys=True)[:FIRST_MESSAGE_CHARS]
        )
    return ""


def prefix_key(body: Any) -> str:
    """A short hash of the part of a request's prompt that other requests may share; "" when it has none.

    Chat: the first message when it is a system (or developer) message — the same key batch workers group
    by (kubeinfer.batch.schedule) — else the first 256 characters of the first message. Completions: the first
    256 characters of the prompt (64 tokens of a token-id prompt; the first prompt of a list). Embeddings: the
    same of `input`. Anything else, a broken body included, gets "" and is routed to the least-loaded replica.
    """
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list):
        key = system_prefix_key(body)
        if key:
            return key
        first = messages[0] if messages else None
        content = first.get("content") if isinstance(first, dict) else None
        text = _leading(content) if isinstance(content, str | list) else ""
        return _digest("message:" + text) if text else ""
    if isinstance(body.get("prompt"), str) and body["prompt"]:
        return system_prefix_key(body)  # the key batch workers group completions by
    for field in ("prompt", "input"):
        text = _leading(body.get(field))
        if text:
            return _digest(f"{field}:{text}")
    return ""


def rendezvous(key: str, replicas: Sequence[str]) -> str:
    """The replica with the highest hash of (key, replica): the same answer in every process."""
    if not replicas:
        raise ValueError("rendezvous hashing needs at least one replica")
    return max(replicas, key=lambda r: (hashlib.blake2b(f"{key}\0{r}".encode(), digest_size=8).digest(), r))


def least_loaded(replicas: Sequence[str], inflight: Mapping[str, int]) -> str:
    """Fewest requests in flight; ties go to the first in the given order."""
    if not replicas:
        raise ValueError("no replica to choose from")
    return min(replicas, key=lambda r: inflight.get(r, 0))


def pick(
    key: str,
    usable: Sequence[str],
    inflight: Mapping[str, int],
    recent: str | None = None,
    slack: int = DEFAULT_SLACK,
) -> str:
    """The replica for a request with prefix `key` among `usable` (live, not quarantined) replicas.

    `recent` is the replica that last served `key` here; it wins over rendezvous hashing while it is usable.
    """
    if not usable:
        raise ValueError("no replica to choose from")
    if not key or len(usable) == 1:
        return least_loaded(usable, inflight)
    preferred = recent if recent is not None and recent in usable else rendezvous(key, usable)
    total = sum(inflight.get(r, 0) for r in usable) + 1  # counting the request being placed
    if inflight.get(preferred, 0) + 1 > total / len(usable) + slack:
        return least_loaded(usable, inflight)
    return preferred


class Affinity:
    """Prefix key -> the replica that last served it, forgetting the oldest keys beyond `capacity`."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._last: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        return self._last.get(key) if key else None

    def record(self, key: str, replica: str) -> None:
        if not key:
            return
        self._last[key] = replica
        self._last.move_to_end(key)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
