"""The Grafana dashboards are generated (hack/dashboards/build.py, `make dashboards`) and only query real metrics.

tests/cluster/test_prometheus.py runs every expression against real Prometheus; here, without one, the checked-in
JSON must be byte-identical to what the generator writes, and every metric a panel names must be one kubeinfer
or llama-server exports.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import REGISTRY

import kubeinfer.metrics.batch
import kubeinfer.metrics.bench
import kubeinfer.metrics.engine
import kubeinfer.metrics.gateway
import kubeinfer.metrics.operator
import kubeinfer.metrics.vllm  # noqa: F401  (registers the families checked below)
from hack.dashboards.build import DASHBOARDS, render_all
from hack.helm.chart import CHART

FOLDER = CHART / "dashboards"
#: What llama-server 0.3.36 exports with --metrics (docs/metrics.md, llama-server's own metrics).
LLAMA_SERVER = {
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_tokens_cached_total",
    "llamacpp:tokens_predicted_total",
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
    "llamacpp:n_busy_slots_per_decode",
}
METRIC = re.compile(r"(?<![\w:$])((?:kubeinfer_|vllm:|llamacpp:|process_)[\w:]+)")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
BUILTIN = {"__rate_interval", "__interval", "__range"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(FOLDER.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found, stack = [], list(board["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        found.append(panel)
    return found


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", []) if t.get("expr")]
    return exprs + [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]


def alternatives(expr: str) -> str:
    """A `__name__` regex such as `kubeinfer_bench_(rating|load_seconds)` spelt out as the names it matches."""
    return re.sub(r"(\w+)\(([\w|]+)\)", lambda m: " ".join(m.group(1) + a for a in m.group(2).split("|")), expr)


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name, *(s.name for s in family.samples)}
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_checked_in_dashboards_are_what_make_dashboards_writes() -> None:
    rendered = render_all()
    assert sorted(rendered) == sorted(p.name for p in FOLDER.glob("*.json")), "run `make dashboards`"
    for name, text in rendered.items():
        assert (FOLDER / name).read_text() == text, f"{name} drifted from hack/dashboards/build.py: `make dashboards`"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_names_a_metric_kubeinfer_or_llama_server_exports(name: str) -> None:
    board = dashboards()[name]
    known = exported() | LLAMA_SERVER
    used = {m for expr in expressions(board) for m in METRIC.findall(alternatives(expr))}
    assert used
    assert used <= known, sorted(used - known)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_reads_the_datasource_variable_and_uses_only_defined_variables(name: str) -> None:
    board = dashboards()[name]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["allValue"] == ".*"
    for panel in panels(board):
        for target in panel.get("targets", []):
            assert panel["datasource"] == target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])
    for expr in expressions(board):
        for match in VARIABLE.finditer(expr):
            assert (match.group(1) or match.group(2)) in set(variables) | BUILTIN, expr


def test_serving_shows_vllm_compatible_latency_percentiles_by_model_and_engine() -> None:
    board = dashboards()["serving.json"]
    assert {"datasource", "namespace", "model", "engine"} <= {v["name"] for v in board["templating"]["list"]}
    by_metric = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            if found := re.search(r"histogram_quantile\(([\d.]+), .*?(vllm:\w+)_bucket", target["expr"]):
                by_metric.setdefault(found.group(2), set()).add((found.group(1), target["legendFormat"]))
    for metric in ("time_to_first_token", "inter_token_latency", "e2e_request_latency"):
        assert by_metric[f"vllm:{metric}_seconds"] == {
            ("0.5", "{{model_name}} {{engine}} p50"),
            ("0.95", "{{model_name}} {{engine}} p95"),
            ("0.99", "{{model_name}} {{engine}} p99"),
        }


def test_benchmark_matrix_has_a_model_by_quantization_grid_and_a_heat_map_coloured_by_a_chosen_metric() -> None:
    board = dashboards()["benchmark-matrix.json"]
    grid = next(p for p in panels(board) if p["title"].startswith("Rating heat map"))
    assert grid["transformations"][0]["options"] == {
        "rowField": "model",
        "columnField": "quantization",
        "valueField": "Value",
    }
    assert grid["fieldConfig"]["defaults"]["custom"]["cellOptions"] == {"type": "color-background"}
    heat = next(p for p in panels(board) if p["type"] == "heatmap")
    assert '__name__=~"$metric"' in heat["targets"][0]["expr"]
    assert heat["options"]["calculate"] is False
    metric = next(v for v in board["templating"]["list"] if v["name"] == "metric")
    assert metric["multi"] is False
