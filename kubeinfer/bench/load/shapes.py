"""Token counts per request, sampled from a profile's traffic scenario with its seed.

A request's shape is the tokens of its own prompt (`input_tokens`), the tokens it asks for
(`output_tokens`) and whether it starts with the shared prefix. The shared prefix comes in front of the
sampled prompt; later turns of a conversation carry the earlier turns in front of theirs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kubeinfer.resources.benchmark_matrix import Scenario, Traffic, parse_scenario


@dataclass(frozen=True)
class RequestShape:
    input_tokens: int
    output_tokens: int
    prefixed: bool = False


@dataclass(frozen=True)
class Conversation:
    """One or more turns sent one after another; turn k carries turns 1..k-1 and their answers."""

    index: int
    turns: tuple[RequestShape, ...]


def default_scenario(input_tokens: int, output_tokens: int) -> str:
    return f"D({input_tokens},{output_tokens})"


def scenario_of(traffic: Traffic, input_tokens: int, output_tokens: int) -> Scenario:
    """The traffic's scenario, or the profile's own fixed shape when the manifest sets none."""
    return parse_scenario(traffic.scenario or default_scenario(input_tokens, output_tokens))


def tokens_needed(traffic: Traffic, scenario: Scenario) -> int:
    """The context one conversation's last turn needs at most (normal shapes judged at their mean)."""
    per_turn = scenario.max_input_tokens + scenario.max_output_tokens
    return traffic.shared_prefix_tokens + traffic.turns * per_turn


def _draw(rng: random.Random, scenario: Scenario, which: tuple[float, float]) -> int:
    if scenario.distribution == "fixed":
        return int(which[0])
    if scenario.distribution == "uniform":
        return rng.randint(int(which[0]), int(which[1]))
    return round(rng.gauss(which[0], which[1]))


def sample_conversations(
    traffic: Traffic, scenario: Scenario, requests: int, slot_tokens: int, margin: int = 0
) -> list[Conversation]:
    """Enough conversations for `requests` requests, reproducible for a given `traffic.seed`.

    Every count is at least 1 and each conversation fits `slot_tokens` less `margin` (room for the chat
    template): normal draws far in the tail are clipped, which the shape actually sent records.
    """
    rng = random.Random(traffic.seed)
    budget = max(2, slot_tokens - margin)
    conversations: list[Conversation] = []
    sent = 0
    while sent < requests:
        prefixed = traffic.shared_prefix_tokens > 0 and rng.random() < traffic.shared_prefix_share
        used = traffic.shared_prefix_tokens if prefixed else 0
        turns = []
        for _ in range(min(traffic.turns, requests - sent)):
            room = budget - used
            if room < 2:
                break
            output = min(max(1, _draw(rng, scenario, scenario.output)), room - 1)
            prompt = min(max(1, _draw(rng, scenario, scenario.input)), room - output)
            turns.append(RequestShape(prompt, output, prefixed))
            used += prompt + output
        if not turns:
            raise ValueError(f"a request does not fit one slot of {slot_tokens} tokens")
        conversations.append(Conversation(len(conversations), tuple(turns)))
        sent += len(turns)
    return conversations
