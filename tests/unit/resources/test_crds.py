"""The CRDs in crds/ are generated from the pydantic models and must not drift from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeinfer.resources.crd import CRDS, CrdInfo, build_crd, render
from kubeinfer.resources.names import GROUP as API_GROUP

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"


@pytest.mark.parametrize("info", CRDS, ids=lambda i: i.kind)
def test_checked_in_crd_matches_the_models(info: CrdInfo) -> None:
    path = CRD_DIR / f"{API_GROUP}_{info.plural}.yaml"
    assert path.read_text() == render(info), f"{path} is stale: run `make crds` and commit the result"


def _walk(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


@pytest.mark.parametrize("info", CRDS, ids=lambda i: i.kind)
def test_schema_is_structural(info: CrdInfo) -> None:
    """No refs or unions survive, and every node has a type or says it is free-form."""
    schema = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema["properties"]["spec"]) + _walk(schema["properties"]["status"]):
        if (
            "properties" in node
            and isinstance(node["properties"], dict)
            and not {"type", "x-kubernetes-preserve-unknown-fields"} & set(node)
        ):
            raise AssertionError(f"untyped object node: {list(node)}")
        assert "$ref" not in node
        assert "anyOf" not in node
        assert "oneOf" not in node


def test_benchmark_matrix_printer_columns_and_names() -> None:
    crd = build_crd(CRDS[0])
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Done", "Cells", "Best", "Age"]
    assert version["subresources"] == {"status": {}}
    assert "bm" in crd["spec"]["names"]["shortNames"]
    loaded = yaml.safe_load(render(CRDS[0]))
    assert loaded["metadata"]["name"] == "benchmarkmatrices.kubeinfer.dev"
