"""Cost per 1M tokens of a cell: the price per hour of where its server ran over its sustainable token rate.

cost per 1M output tokens = price_per_hour / (output tokens/s * 3600) * 1e6, and the same for input tokens.
The rates are the cell's best sustainable level (`max_sustainable_*`, filled from the sweep or from the
single load level); a cell measured before those existed falls back to the interactive profile's
single-stream decode rate for output tokens and gets no input cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kubeinfer.resources.benchmark_matrix import CellResult, Placement
from kubeinfer.resources.names import GROUP

#: Node annotation (else label of the same name) giving the node's price per hour, in the matrix's currency.
PRICE_KEY = f"{GROUP}/price-per-hour"
SECONDS_PER_HOUR = 3600
MILLION = 1_000_000


class PriceError(ValueError):
    """A price that is not a non-negative number; the message names where it came from."""


@dataclass(frozen=True)
class Price:
    per_hour: float
    currency: str
    #: Where the price came from: "placement.pricePerHour", or "node NAME annotation KEY" / "... label KEY".
    source: str


def parse_price(text: str, where: str) -> float:
    """A price per hour from text such as "0.42"; raises PriceError naming `where` for anything else."""
    try:
        value = float(text.strip())
    except ValueError:
        raise PriceError(f"{where} is {text!r}, not a price per hour (a number such as 0.42)") from None
    if not math.isfinite(value) or value < 0:
        raise PriceError(f"{where} is {text!r}; a price per hour must be a finite number of at least 0")
    return value


def manifest_price(placement: Placement) -> Price | None:
    """The manifest's `placement.pricePerHour`, or None when it is unset."""
    if placement.price_per_hour is None:
        return None
    return Price(placement.price_per_hour, placement.currency, "placement.pricePerHour")


def node_price(node: str, annotations: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> float | None:
    """The node's `kubeinfer.dev/price-per-hour` annotation, else its label of that name; None when neither is set.

    A label value cannot hold every number an annotation can (no leading dot, 63 characters), which is why
    the annotation is read first.
    """
    for kind, values in (("annotation", annotations), ("label", labels)):
        if values and PRICE_KEY in values:
            return parse_price(values[PRICE_KEY], f"node {node} {kind} {PRICE_KEY}")
    return None


def cost_per_million(price_per_hour: float, tokens_per_second: float | None) -> float | None:
    """Price of 1M tokens at `tokens_per_second`; None without a positive rate."""
    if tokens_per_second is None or not math.isfinite(tokens_per_second) or tokens_per_second <= 0:
        return None
    return price_per_hour / (tokens_per_second * SECONDS_PER_HOUR) * MILLION


def sustainable_rates(cell: CellResult) -> tuple[float | None, float | None]:
    """(output, input) tokens per second at the cell's best sustainable level."""
    output = cell.max_sustainable_output_tokens_per_second
    if output is None:
        interactive = cell.profiles.get("interactive")
        value = interactive.metrics.get("tokens_per_second") if interactive else None
        output = float(value) if isinstance(value, int | float) else None
    return output, cell.max_sustainable_input_tokens_per_second


def apply_cost(cell: CellResult, price: Price | None) -> CellResult:
    """Set the cell's price and its cost per 1M output and input tokens (None where a rate is missing)."""
    if price is None:
        return cell
    output, input_ = sustainable_rates(cell)
    cell.price_per_hour, cell.currency = price.per_hour, price.currency
    cell.cost_per_million_output_tokens = _rounded(cost_per_million(price.per_hour, output))
    cell.cost_per_million_input_tokens = _rounded(cost_per_million(price.per_hour, input_))
    return cell


def _rounded(value: float | None) -> float | None:
    """Six significant digits: prices of small models on cheap nodes are fractions of a cent."""
    return float(f"{value:.6g}") if value is not None else None
