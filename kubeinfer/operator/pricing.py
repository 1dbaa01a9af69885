"""The price per hour of a cell in a cluster: the manifest's, else that of the node its server pod ran on."""

from __future__ import annotations

import json

from kubernetes import client

from kubeinfer.bench.cost import PRICE_KEY, Price, PriceError, manifest_price, node_price
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec


def cell_price(core: client.CoreV1Api, spec: BenchmarkMatrixSpec, node: str | None) -> Price | None:
    """`placement.pricePerHour`, else the node's `kubeinfer.dev/price-per-hour` annotation or label.

    None when neither gives a price; raises PriceError (naming the node) for a malformed one or a node
    that cannot be read. The node is read with a list call: the operator may list nodes, not get them.
    """
    if (price := manifest_price(spec.placement)) is not None:
        return price
    if not node:
        return None
    try:
        response = core.list_node(field_selector=f"metadata.name={node}", _preload_content=False)
    except client.ApiException as exc:
        raise PriceError(f"cannot read node {node} for its {PRICE_KEY}: {exc.status} {exc.reason}") from None
    items = json.loads(response.data).get("items") or []
    if not items:
        return None
    metadata = items[0].get("metadata") or {}
    per_hour = node_price(node, metadata.get("annotations"), metadata.get("labels"))
    if per_hour is None:
        return None
    return Price(per_hour, spec.placement.currency, f"node {node}")
