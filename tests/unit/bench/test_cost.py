"""Cost per 1M tokens from a price per hour and the cell's sustainable rates; prices from the manifest or a node."""

from __future__ import annotations

import pytest

from kubeinfer.bench.cost import (
    PRICE_KEY,
    Price,
    PriceError,
    apply_cost,
    cost_per_million,
    manifest_price,
    node_price,
)
from kubeinfer.resources.benchmark_matrix import CellResult, Placement, ProfileResult


def cell(**fields: object) -> CellResult:
    return CellResult.model_validate({"model": "m", "quantization": "Q4_K_M", "model_size_b": 0.135, **fields})


def test_cost_is_price_over_tokens_per_hour() -> None:
    # 1 USD/h at 100 tokens/s: 360,000 tokens per hour, so 1M tokens cost 1/0.36 USD.
    assert cost_per_million(1.0, 100.0) == pytest.approx(2.777777, rel=1e-6)
    assert cost_per_million(0.0, 100.0) == 0.0


@pytest.mark.parametrize("rate", [None, 0.0, -3.0, float("nan"), float("inf")])
def test_no_cost_without_a_positive_rate(rate: float | None) -> None:
    assert cost_per_million(1.0, rate) is None


def test_cell_cost_uses_the_sustainable_rates() -> None:
    result = apply_cost(
        cell(
            max_sustainable_output_tokens_per_second=250.0,
            max_sustainable_input_tokens_per_second=2000.0,
            profiles={"interactive": ProfileResult(status="passed", metrics={"tokens_per_second": 40.0})},
        ),
        Price(0.9, "EUR", "placement.pricePerHour"),
    )
    assert result.price_per_hour == 0.9
    assert result.currency == "EUR"
    assert result.cost_per_million_output_tokens == pytest.approx(0.9 / (250 * 3600) * 1e6, rel=1e-5)
    assert result.cost_per_million_input_tokens == pytest.approx(0.9 / (2000 * 3600) * 1e6, rel=1e-5)


def test_cell_without_sustainable_rates_falls_back_to_the_interactive_decode_rate() -> None:
    result = apply_cost(
        cell(profiles={"interactive": ProfileResult(status="passed", metrics={"tokens_per_second": 40})}),
        Price(2.0, "USD", "placement.pricePerHour"),
    )
    assert result.cost_per_million_output_tokens == pytest.approx(2.0 / (40 * 3600) * 1e6, rel=1e-5)
    assert result.cost_per_million_input_tokens is None


def test_a_cell_that_measured_nothing_gets_its_price_but_no_cost() -> None:
    result = apply_cost(cell(), Price(2.0, "USD", "placement.pricePerHour"))
    assert (result.price_per_hour, result.cost_per_million_output_tokens) == (2.0, None)


def test_no_price_leaves_the_cell_unpriced() -> None:
    result = apply_cost(cell(max_sustainable_output_tokens_per_second=10.0), None)
    assert result.price_per_hour is None
    assert result.cost_per_million_output_tokens is None


def test_manifest_price_and_currency() -> None:
    assert manifest_price(Placement()) is None
    price = manifest_price(Placement.model_validate({"pricePerHour": 0.5, "currency": "EUR"}))
    assert price == Price(0.5, "EUR", "placement.pricePerHour")


def test_node_annotation_wins_over_the_label() -> None:
    assert node_price("n1", {PRICE_KEY: "0.42"}, {PRICE_KEY: "9"}) == 0.42
    assert node_price("n1", {}, {PRICE_KEY: "3"}) == 3.0
    assert node_price("n1", None, None) is None


@pytest.mark.parametrize("text", ["cheap", "", "-1", "nan", "inf", "1,5"])
def test_a_malformed_node_price_names_the_node_and_the_key(text: str) -> None:
    with pytest.raises(PriceError) as raised:
        node_price("gpu-node-7", {PRICE_KEY: text}, None)
    assert f"node gpu-node-7 annotation {PRICE_KEY} is {text!r}" in str(raised.value)


def test_a_negative_manifest_price_is_refused_by_the_schema() -> None:
    with pytest.raises(ValueError, match="price_per_hour|pricePerHour"):
        Placement.model_validate({"pricePerHour": -1})
