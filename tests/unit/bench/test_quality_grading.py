"""The quality profile's graders on hand-written answers, good and broken, and the bundled prompt set."""

from __future__ import annotations

import pytest

from kubeinfer.bench.profiles.quality import CATEGORY_METRICS, grade, load_prompts, scores

NUMBER = {"type": "number", "value": 1250}
LUIS = {"type": "one_of", "values": ["Luis"], "forbid": ["Maria"]}
ONE_WORD = {"type": "regex", "pattern": r"^\W*[A-Za-z]+\W*$"}
CAPITAL = {"type": "json_keys", "keys": ["capital"], "values": {"capital": "Paris"}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("1250", True),
        ("The total is $1,250.00.", True),
        ("3 items at $400 plus $50 gives 1250", True),
        ("1250 is wrong, it is 1251", False),
        ("-1250", False),
        ("I cannot tell.", False),
        ("", False),
    ],
)
def test_number_grader_reads_the_last_number(answer: str, expected: bool) -> None:
    assert grade(NUMBER, answer) is expected


def test_number_grader_honours_tolerance() -> None:
    assert grade({"type": "number", "value": 0.1, "tolerance": 0.01}, "about 0.105")
    assert not grade({"type": "number", "value": 0.1, "tolerance": 0.001}, "about 0.105")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Luis", True),
        ("luis found them.", True),
        ("Maria or Luis", False),
        ("Luisa", False),
        ("Maria", False),
        ("", False),
    ],
)
def test_one_of_grader_needs_a_whole_word_and_no_hedge(answer: str, expected: bool) -> None:
    assert grade(LUIS, answer) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("Red", True), ("  blue.\n", True), ("Red, obviously", False), ("Red and blue", False), ("", False)],
)
def test_regex_grader_matches_the_whole_trimmed_answer(answer: str, expected: bool) -> None:
    assert grade(ONE_WORD, answer) is expected


def test_regex_grader_flags_ignore_case() -> None:
    assert grade({"type": "regex", "pattern": "yes", "flags": "i"}, "YES")
    assert not grade({"type": "regex", "pattern": "yes"}, "YES")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"capital": "Paris"}', True),
        ('{"capital": " paris ", "country": "France"}', True),
        ('```json\n{"capital": "Paris"}\n```', True),
        ('{"capital": "Lyon"}', False),
        ('{"city": "Paris"}', False),
        ('["Paris"]', False),
        ('The answer is {"capital": "Paris"}', False),
        ('{"capital": "Paris"', False),
        ("", False),
    ],
)
def test_json_keys_grader_wants_one_object_with_the_keys(answer: str, expected: bool) -> None:
    assert grade(CAPITAL, answer) is expected


def test_unknown_grader_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown grader type"):
        grade({"type": "vibes"}, "anything")


def test_bundled_prompts_cover_every_category_with_known_graders() -> None:
    prompts = load_prompts()
    assert 12 <= len(prompts) <= 15
    assert len({p.id for p in prompts}) == len(prompts)
    counts = {c: sum(p.category == c for p in prompts) for c in CATEGORY_METRICS}
    assert all(2 <= n <= 4 for n in counts.values()), counts


def test_scores_are_percent_per_category() -> None:
    answers = [
        {"id": "a", "category": "math", "passed": True},
        {"id": "b", "category": "math", "passed": False},
        {"id": "c", "category": "format", "passed": True},
    ]
    metrics = scores(answers)
    assert metrics["math_score"] == 50.0
    assert metrics["format_compliance"] == 100.0
    assert metrics["comprehension_score"] is None
    assert metrics["overall_score"] == pytest.approx(66.67)
    assert metrics["answers"] == answers
