"""Prompts built to sampled token counts with the served model's own tokenizer (/tokenize, /detokenize).

Text comes from one pool of deterministic prose tokenized once; each request takes its own slice, cut at
the token count and turned back into text by the server, so the count holds for that model's vocabulary.
The chat template and the profile's instruction cost tokens too: they are measured once through
/apply-template and taken off the prompt text, so the whole templated prompt is about the sampled size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kubeinfer.bench.client import ChatClient, Message, ServerError
from kubeinfer.bench.load.shapes import Conversation, RequestShape
from kubeinfer.bench.load.text import filler_text

#: Extra tokens in the pool, so that requests of the same length start at different places.
POOL_SPREAD = 512


@dataclass(frozen=True)
class Framing:
    """How a profile words its requests: `instruction` holds `{text}` and may hold `{words}` (output length)."""

    instruction: str
    topic: str
    temperature: float


class PromptBuilder:
    """User messages of a given token count, the shared prefix in front where a shape asks for it."""

    def __init__(
        self, client: ChatClient, framing: Framing, longest_prompt: int, prefix_tokens: int, seed: int
    ) -> None:
        self.client = client
        self.framing = framing
        self.rng = random.Random(seed)
        tokens = prefix_tokens + longest_prompt + POOL_SPREAD
        self.pool = client.tokenize(filler_text(tokens, topic=framing.topic))
        self.prefix = client.detokenize(self.pool[:prefix_tokens]) + "\n\n" if prefix_tokens else ""
        self.unique_from = prefix_tokens
        self.overhead = self._overhead()

    def _overhead(self) -> int:
        """Tokens the template and the instruction add around the prompt text."""
        empty = self.framing.instruction.format(text="", words=0)
        try:
            templated = self.client.apply_template([{"role": "user", "content": empty}])
        except ServerError:
            templated = empty
        return len(self.client.tokenize(templated))

    def text(self, tokens: int) -> str:
        """About `tokens` tokens of prose from a seeded place in the pool."""
        tokens = max(1, min(tokens, len(self.pool) - self.unique_from))
        start = self.rng.randint(self.unique_from, len(self.pool) - tokens)
        return self.client.detokenize(self.pool[start : start + tokens])

    def message(self, shape: RequestShape, first_turn: bool) -> Message:
        """The user message of one turn: only the first turn pays the template's and instruction's tokens."""
        body = self.text(shape.input_tokens - (self.overhead if first_turn else 0))
        content = self.framing.instruction.format(text=body, words=shape.output_tokens)
        if shape.prefixed and first_turn:
            content = self.prefix + content
        return {"role": "user", "content": content}

    def conversation(self, conversation: Conversation) -> list[Message]:
        """Every turn's user message, built before the level starts so that building is not timed."""
        return [self.message(shape, index == 0) for index, shape in enumerate(conversation.turns)]
