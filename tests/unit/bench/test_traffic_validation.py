"""Traffic, sweep and SLO settings in the manifest: broken input is refused with the field named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, parse_scenario

BASE: dict[str, Any] = {
    "models": [{"name": "m", "size": "135M", "files": {"Q4_1": "pypi:smollm2-135m"}}],
    "engine": {"ctxSize": 4096, "parallel": 4},
}


def spec(**profiles: dict[str, Any]) -> BenchmarkMatrixSpec:
    data = copy.deepcopy(BASE)
    data["profiles"] = profiles
    return BenchmarkMatrixSpec.model_validate(data)


def refused(**profiles: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        spec(**profiles)
    return str(info.value)


def test_valid_traffic_sweep_and_slo_are_accepted() -> None:
    parsed = spec(
        interactive={
            "traffic": {"scenario": "N(200,40)/(100,10)", "sharedPrefixTokens": 100, "sharedPrefixShare": 0.5},
            "sweep": {"rates": [4, 1, 2, 2]},
            "slo": {"ttftSeconds": 1, "itlSeconds": 0.1},
        },
        batch={"traffic": {"scenario": "U(10,300)/(5,50)", "turns": 2}, "sweep": {"concurrency": [8, 1]}},
    )
    assert parsed.profiles.interactive.sweep is not None
    assert parsed.profiles.interactive.sweep.rates == [1, 2, 4]
    assert parsed.profiles.batch.sweep is not None
    assert parsed.profiles.batch.sweep.concurrency == [1, 8]
    assert parsed.profiles.interactive.slo is not None
    assert parsed.profiles.interactive.slo.percentile == 95


@pytest.mark.parametrize(
    "scenario", ["D(100)", "X(1,2)", "N(100,10)", "U(1,2)/(3)", "D(-1,5)", "D(1.5,2)", "d(1,2)", "D(1,2) "]
)
def test_unknown_or_malformed_scenario_names_the_field(scenario: str) -> None:
    message = refused(interactive={"traffic": {"scenario": scenario}})
    assert "profiles.interactive.traffic.scenario" in message


def test_zero_tokens_and_inverted_ranges_are_impossible() -> None:
    assert "at least 1 token" in refused(batch={"traffic": {"scenario": "D(0,10)"}})
    assert "min <= max" in refused(batch={"traffic": {"scenario": "U(50,10)/(1,2)"}})
    with pytest.raises(ValueError, match="is not D"):
        parse_scenario("Q(1,2)")


def test_prompt_longer_than_a_slot_names_the_scenario_and_the_slot() -> None:
    message = refused(interactive={"traffic": {"scenario": "D(1000,100)"}})
    assert "profiles.interactive.traffic.scenario D(1000,100) needs 1100 tokens" in message
    assert "engine.ctxSize 4096 / parallel 4 = 1024" in message


def test_turns_and_shared_prefix_count_against_the_slot() -> None:
    assert "x 3 turns" in refused(batch={"traffic": {"scenario": "D(200,200)", "turns": 3}})
    message = refused(
        interactive={"traffic": {"scenario": "D(100,100)", "sharedPrefixTokens": 900, "sharedPrefixShare": 1}}
    )
    assert "900-token shared prefix" in message


@pytest.mark.parametrize(
    ("sweep", "field"),
    [
        ({"rates": [-1]}, "sweep.rates.0"),
        ({"rates": [0]}, "sweep.rates.0"),
        ({"concurrency": [0]}, "sweep.concurrency.0"),
        ({"concurrency": [1], "requestsPerLevel": 0}, "sweep.requestsPerLevel"),
        ({"concurrency": [1], "saturationGainPercent": -5}, "sweep.saturationGainPercent"),
        ({}, "a sweep needs concurrency levels, rates, or both"),
    ],
)
def test_broken_sweep_names_the_field(sweep: dict[str, Any], field: str) -> None:
    assert field in refused(interactive={"sweep": sweep})


@pytest.mark.parametrize(
    ("slo", "field"),
    [
        ({"ttftSeconds": -1}, "slo.ttftSeconds"),
        ({"itlSeconds": 0}, "slo.itlSeconds"),
        ({"ttftSeconds": 1, "percentile": 0}, "slo.percentile"),
        ({"ttftSeconds": 1, "percentile": 101}, "slo.percentile"),
        ({"percentile": 90}, "an slo needs at least one of"),
    ],
)
def test_broken_slo_names_the_field(slo: dict[str, Any], field: str) -> None:
    assert field in refused(batch={"slo": slo})


def test_share_outside_zero_to_one_and_zero_turns_are_refused() -> None:
    assert "traffic.sharedPrefixShare" in refused(interactive={"traffic": {"sharedPrefixShare": 1.5}})
    assert "traffic.turns" in refused(interactive={"traffic": {"turns": 0}})
    assert "traffic.sharedPrefixTokens" in refused(interactive={"traffic": {"sharedPrefixTokens": -1}})


def test_the_crd_carries_the_slot_check_for_the_api_server() -> None:
    extra = BenchmarkMatrixSpec.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    rules = {r["fieldPath"]: r for r in extra["x-kubernetes-validations"]}
    for profile in ("interactive", "batch"):
        rule = rules[f".profiles.{profile}.traffic.scenario"]
        assert "findAll" in rule["rule"]
        assert "self.engine.parallel" in rule["rule"]
