"""Prefix-aware routing without a server: prefix keys, affinity, rendezvous agreement, fallbacks."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.batch import routing
from kubeinfer.batch.pool import EndpointPool, NoEndpoints
from kubeinfer.batch.routing import Affinity, least_loaded, pick, prefix_key, rendezvous
from kubeinfer.batch.schedule import prefix_key as grouping_key
from kubeinfer.batch.shard_worker import groups_in_key_order
from kubeinfer.batch.shards import plan, shard_offsets

REPLICAS = ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"]


def chat(system: str | None, user: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": user}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"model": "m", "messages": messages}


def test_key_is_the_system_prompt_whatever_the_user_asks_and_matches_the_batch_grouping() -> None:
    a, b = chat("You are terse.", "What is 2+2?"), chat("You are terse.", "Name a colour.")
    assert prefix_key(a) == prefix_key(b) == grouping_key(a) != ""
    assert prefix_key(chat("You are verbose.", "What is 2+2?")) != prefix_key(a)


def test_key_without_a_system_prompt_is_the_start_of_the_first_message_or_prompt() -> None:
    long = "x" * routing.FIRST_MESSAGE_CHARS
    assert prefix_key(chat(None, long + "a")) == prefix_key(chat(None, long + "b")) != ""
    assert prefix_key(chat(None, "short a")) != prefix_key(chat(None, "short b"))
    assert prefix_key({"prompt": long + "1"}) == prefix_key({"prompt": long + "2"}) != ""
    assert prefix_key({"prompt": [long + "1", "other"]}) == prefix_key({"prompt": [long + "2"]}) != ""
    tokens = list(range(routing.PREFIX_TOKENS))
    assert prefix_key({"prompt": [*tokens, 1]}) == prefix_key({"prompt": [*tokens, 2]}) != ""
    assert prefix_key({"input": "embed me"}) != ""
    parts = [{"type": "text", "text": "hello"}]
    assert prefix_key({"messages": [{"role": "user", "content": parts}]}) != ""


@pytest.mark.parametrize(
    "body",
    [
        None,
        "a string",
        [1, 2],
        {},
        {"model": "m"},
        {"messages": None},
        {"messages": []},
        {"messages": ["not a dict"]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": 7}]},
        {"prompt": ""},
        {"prompt": []},
        {"prompt": {"nested": True}},
    ],
)
def test_broken_or_empty_bodies_get_no_key_and_still_route_to_the_least_loaded(body: Any) -> None:
    assert prefix_key(body) == ""
    inflight = {REPLICAS[0]: 3, REPLICAS[1]: 0, REPLICAS[2]: 1}
    assert pick(prefix_key(body), REPLICAS, inflight) == REPLICAS[1]


def test_rendezvous_agrees_whatever_the_order_and_moves_only_the_keys_of_a_lost_replica() -> None:
    keys = [prefix_key(chat(f"system prompt {i}", "q")) for i in range(300)]
    before = {k: rendezvous(k, REPLICAS) for k in keys}
    assert before == {k: rendezvous(k, list(reversed(REPLICAS))) for k in keys}
    assert set(Counter(before.values())) == set(REPLICAS)  # every replica owns some keys
    survivors = REPLICAS[:2]
    after = {k: rendezvous(k, survivors) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] in survivors)
    with pytest.raises(ValueError, match="at least one replica"):
        rendezvous("k", [])


def test_recent_replica_wins_over_rendezvous_until_it_has_more_than_its_fair_share_plus_slack() -> None:
    key = prefix_key(chat("shared", "q"))
    owner = rendezvous(key, REPLICAS)
    recent = next(r for r in REPLICAS if r != owner)
    idle = dict.fromkeys(REPLICAS, 0)
    assert pick(key, REPLICAS, idle) == owner
    assert pick(key, REPLICAS, idle, recent=recent) == recent
    assert pick(key, REPLICAS, idle, recent="http://gone:8080") == owner  # no longer live
    busy = idle | {owner: 2}  # placing one more: 3 > 3/3 + 2 is false
    assert pick(key, REPLICAS, busy, slack=2) == owner
    overloaded = idle | {owner: 3}  # 4 > 4/3 + 2
    chosen = pick(key, REPLICAS, overloaded, slack=2)
    assert chosen != owner
    assert chosen == least_loaded([r for r in REPLICAS if r != owner], overloaded)
    even = dict.fromkeys(REPLICAS, 5)  # everyone equally busy: stay with the cache
    assert pick(key, REPLICAS, even) == owner


def test_affinity_forgets_the_oldest_keys_and_ignores_empty_ones() -> None:
    memory = Affinity(capacity=2)
    memory.record("a", "r1")
    memory.record("b", "r2")
    memory.record("a", "r3")  # refreshes "a"
    memory.record("c", "r1")
    memory.record("", "r1")
    assert (memory.get("a"), memory.get("b"), memory.get("c"), memory.get("")) == ("r3", None, "r1", None)


def _pool(urls: list[str], **kwargs: Any) -> EndpointPool:
    async def resolve() -> list[str]:
        return list(urls)

    return EndpointPool(resolve, **kwargs)


def test_two_pools_route_each_prefix_to_the_same_replica_without_talking_to_each_other() -> None:
    bodies = [chat(f"system {i % 7}", f"question {i}") for i in range(70)]

    async def routes(pool: EndpointPool) -> list[str]:
        chosen = []
        for body in bodies:
            url = await pool.acquire(body)
            pool.release(url, body)
            chosen.append(url)
        await pool.aclose()
        return chosen

    first = asyncio.run(routes(_pool(REPLICAS)))
    second = asyncio.run(routes(_pool(list(reversed(REPLICAS)))))
    assert first == second
    by_key: dict[str, set[str]] = {}
    for body, url in zip(bodies, first, strict=True):
        by_key.setdefault(prefix_key(body), set()).add(url)
    assert all(len(urls) == 1 for urls in by_key.values())


def test_pool_falls_back_when_the_preferred_replica_is_quarantined_or_overloaded() -> None:
    body = chat("shared", "q")
    key = prefix_key(body)

    async def main() -> None:
        pool = _pool(REPLICAS[:2], slack=1)
        owner = await pool.acquire(body)
        pool.release(owner, body)
        other = next(r for r in REPLICAS[:2] if r != owner)
        assert pool.affinity.get(key) == owner

        pool.release(await pool.acquire(body), body, failed=True)  # owner failed: quarantined
        assert await pool.acquire(body) == other
        pool.inflight[other] = 0
        pool.down_until.clear()

        held = [await pool.acquire(body) for _ in range(4)]  # owner's share fills, then the other helps
        assert held.count(owner) == 3
        assert held.count(other) == 1
        await pool.aclose()

    asyncio.run(main())


def test_pool_without_prefix_routing_is_least_loaded_and_records_no_affinity() -> None:
    body = chat("shared", "q")

    async def main() -> list[str]:
        pool = _pool(REPLICAS[:2], prefix_routing=False)
        chosen = [await pool.acquire(body) for _ in range(4)]
        for url in chosen:
            pool.release(url, body)
        assert pool.affinity.get(prefix_key(body)) is None
        await pool.aclose()
        return chosen

    assert Counter(asyncio.run(main())) == Counter({REPLICAS[0]: 2, REPLICAS[1]: 2})


def test_pool_with_no_replica_raises_no_endpoints_and_passes_its_timeout_to_clients() -> None:
    async def main() -> None:
        empty = _pool([])
        with pytest.raises(NoEndpoints, match="no ready replica"):
            await empty.post("/v1/chat/completions", chat("s", "q"))
        timed = _pool(REPLICAS[:1], timeout=7.5)
        await timed.refresh(force=True)
        assert timed.clients[REPLICAS[0]].http.timeout.read == 7.5
        await timed.aclose()

    asyncio.run(main())


def test_quarantine_ends_after_its_time() -> None:
    body = chat("shared", "q")

    async def main() -> None:
        pool = _pool(REPLICAS[:2], quarantine_seconds=60)
        owner = await pool.acquire(body)
        pool.release(owner, body, failed=True)
        assert await pool.acquire(body) != owner
        assert pool.down_until[owner] > time.monotonic()
        pool.down_until[owner] = time.monotonic()  # as if quarantine_seconds had passed
        pool.inflight = dict.fromkeys(pool.inflight, 0)
        assert await pool.acquire(body) == owner  # affinity was kept for the healthy owner
        await pool.aclose()

    asyncio.run(main())


def test_every_shard_sends_its_prefix_groups_in_the_same_order_keeping_input_order_inside(tmp_path: Path) -> None:
    rng = random.Random(3)
    systems = [f"system prompt {k}" for k in range(5)]
    requests = [{"custom_id": f"r{i}", "body": chat(systems[i % 5], f"q{i}")} for i in range(100)] + [
        {"custom_id": f"u{i}", "body": chat(None, f"u{i}")} for i in range(5)
    ]
    rng.shuffle(requests)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in requests))
    orders = []
    for index in range(2):
        shard = plan(len(requests), 2, index)
        ordered = groups_in_key_order(path, shard_offsets(path, shard, done=set()))
        data = path.read_bytes()
        lines = [json.loads(data[o : data.index(b"\n", o)]) for o in ordered]
        keys = [grouping_key(line["body"]) for line in lines]
        assert keys == sorted(keys)  # grouped, groups in key order
        numbers = [requests.index(line) for line in lines]
        for key in set(keys):
            inside = [n for n, k in zip(numbers, keys, strict=True) if k == key]
            assert inside == sorted(inside)
        orders.append(list(dict.fromkeys(keys)))
    assert orders[0] == orders[1]
