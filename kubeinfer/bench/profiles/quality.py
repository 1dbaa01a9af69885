"""Quality: bundled graded prompts (math, comprehension, reasoning, format), answered and scored automatically.

The prompts and graders live in `kubeinfer/bench/data/quality.json`. Every quantization answers the same
prompts at temperature 0 with a fixed seed, so a drop in score between quantizations is the quantization's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kubeinfer.bench.profiles.base import ProfileContext, guarded, judged
from kubeinfer.resources.benchmark_matrix import ProfileResult, QualityProfile

MAX_ANSWER_TOKENS = 64
#: Metric name of each category's score.
CATEGORY_METRICS = {
    "math": "math_score",
    "comprehension": "comprehension_score",
    "reasoning": "reasoning_score",
    "format": "format_compliance",
}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class QualityPrompt:
    id: str
    category: str
    prompt: str
    grader: Mapping[str, Any]


def load_prompts() -> list[QualityPrompt]:
    """The bundled prompts, validated: a known category and grader type for each."""
    text = resources.files("kubeinfer.bench").joinpath("data/quality.json").read_text(encoding="utf-8")
    prompts = [QualityPrompt(**item) for item in json.loads(text)["prompts"]]
    for prompt in prompts:
        if prompt.category not in CATEGORY_METRICS:
            raise ValueError(f"quality prompt {prompt.id}: unknown category {prompt.category!r}")
        if prompt.grader.get("type") not in GRADERS:
            raise ValueError(f"quality prompt {prompt.id}: unknown grader type {prompt.grader.get('type')!r}")
    return prompts


def grade(grader: Mapping[str, Any], answer: str) -> bool:
    """Whether `answer` satisfies `grader` (see GRADERS for the types)."""
    kind = grader.get("type")
    if kind not in GRADERS:
        raise ValueError(f"unknown grader type {kind!r}")
    return GRADERS[kind](grader, answer)


def grade_number(grader: Mapping[str, Any], answer: str) -> bool:
    """The last number in the answer (commas and currency signs ignored) equals `value` within `tolerance`."""
    numbers = NUMBER.findall(answer)
    if not numbers:
        return False
    try:
        found = float(numbers[-1].replace(",", ""))
    except ValueError:
        return False
    return abs(found - float(grader["value"])) <= float(grader.get("tolerance", 1e-9))


def grade_one_of(grader: Mapping[str, Any], answer: str) -> bool:
    """One of `values` appears as a whole word and none of `forbid` does (a hedged answer fails)."""

    def mentions(word: str) -> bool:
        return re.search(rf"\b{re.escape(word.lower())}\b", answer.lower()) is not None

    return any(mentions(v) for v in grader["values"]) and not any(mentions(f) for f in grader.get("forbid", []))


def grade_regex(grader: Mapping[str, Any], answer: str) -> bool:
    """The whole answer, trimmed, matches `pattern` (`flags` "i" ignores case)."""
    flags = re.IGNORECASE if "i" in grader.get("flags", "") else 0
    return re.fullmatch(grader["pattern"], answer.strip(), flags) is not None


def grade_json_keys(grader: Mapping[str, Any], answer: str) -> bool:
    """The answer is one JSON object (a code fence around it is tolerated) with `keys` and `values`."""
    text = answer.strip()
    if fenced := CODE_FENCE.match(text):
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return False
    if not isinstance(data, dict) or not all(key in data for key in grader["keys"]):
        return False
    expected: Mapping[str, Any] = grader.get("values", {})
    return all(str(data.get(k, "")).strip().lower() == str(v).strip().lower() for k, v in expected.items())


GRADERS: dict[str, Callable[[Mapping[str, Any], str], bool]] = {
    "number": grade_number,
    "one_of": grade_one_of,
    "regex": grade_regex,
    "json_keys": grade_json_keys,
}


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Ask every bundled prompt once and score each category in percent."""
    answers = []
    with ctx.client() as client:
        for prompt in load_prompts():
            reply = client.complete([{"role": "user", "content": prompt.prompt}], MAX_ANSWER_TOKENS)
            passed = grade(prompt.grader, reply.text)
            ctx.log(f"quality {prompt.id}: {'passed' if passed else 'failed'}")
            answers.append({"id": prompt.id, "category": prompt.category, "passed": passed})
    metrics = scores(answers)
    return judged(metrics, failures(metrics, ctx.profiles.quality))


def scores(answers: list[dict[str, Any]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for category, metric in CATEGORY_METRICS.items():
        graded = [a["passed"] for a in answers if a["category"] == category]
        metrics[metric] = _percent(graded)
    metrics["overall_score"] = _percent([a["passed"] for a in answers])
    metrics["answers"] = answers
    return metrics


def failures(metrics: dict[str, Any], cfg: QualityProfile) -> list[str]:
    minimums = {
        "math_score": cfg.min_math_score,
        "comprehension_score": cfg.min_comprehension_score,
        "reasoning_score": cfg.min_reasoning_score,
        "format_compliance": cfg.min_format_compliance,
    }
    return [
        f"{metric.removesuffix('_score')} {metrics[metric]:.0f}% < {minimum:g}%"
        for metric, minimum in minimums.items()
        if metrics[metric] is not None and metrics[metric] < minimum
    ]


def _percent(passed: list[bool]) -> float | None:
    return round(100 * sum(passed) / len(passed), 2) if passed else None
