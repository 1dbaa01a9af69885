"""Deterministic varied prose: the raw material prompts are cut from."""

from __future__ import annotations


def filler_text(approx_tokens: int, topic: str = "the archive") -> str:
    """Deterministic varied prose, at least `approx_tokens` tokens long (about one token per 4 chars)."""
    sentences: list[str] = []
    length = 0
    while length < approx_tokens * 5:
        sentences.append(_sentence(len(sentences), topic))
        length += len(sentences[-1]) + 1
    return " ".join(sentences)


_SUBJECTS = ("The keeper", "A traveller", "The council", "An old map", "The river", "A merchant", "The tower")
_VERBS = ("recorded", "described", "forgot", "guarded", "questioned", "traded", "mapped")
_OBJECTS = (
    "the northern gate",
    "a silver lantern",
    "seven winters",
    "the salt road",
    "a sealed letter",
    "the copper bell",
    "the last harvest",
    "a broken compass",
    "the eastern marsh",
)


def _sentence(index: int, topic: str) -> str:
    subject = _SUBJECTS[index % len(_SUBJECTS)]
    verb = _VERBS[(index * 3) % len(_VERBS)]
    obj = _OBJECTS[(index * 5) % len(_OBJECTS)]
    return f"Entry {index + 1}: {subject} of {topic} {verb} {obj} in year {1200 + index * 7 % 400}."
