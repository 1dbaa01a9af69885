"""kubeinfer's Grafana dashboards as code (grafana-foundation-sdk); `make dashboards` writes them into the chart.

Every panel reads the `${datasource}` variable and filters on `$namespace` (the namespace of the scraped pods,
`.*` when All is chosen, which also matches series without the label). The serving dashboard's vLLM-compatible
panels query vLLM's own names, so one panel shows llama.cpp (recorded by kubeinfer, engine="llamacpp") and vLLM
pods (recorded by vLLM, engine="0") side by side; `$model` and `$engine` pick among them. docs/metrics.md lists
the panels; tests/cluster/test_prometheus.py runs every expression against real Prometheus.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    gauge,
    heatmap,
    piechart,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
#: Ratings as kubeinfer.metrics.bench exports them, coloured worst (red) to best (green).
RATINGS = {0: ("failed", "red"), 1: ("poor", "orange"), 2: ("acceptable", "yellow"), 3: ("good", "light-green")}
RATINGS[4] = ("excellent", "green")

Panel = Any  # any grafana-foundation-sdk panel builder


def sel(*matchers: str, ns: bool = True) -> str:
    """A label selector body: `namespace=~"$namespace"` first, then the given matchers."""
    return "{" + ", ".join([*(['namespace=~"$namespace"'] if ns else []), *matchers]) + "}"


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).legend_format(legend)
    if instant:
        return built.instant().format(prometheus_model.PromQueryFormat.TABLE)
    return built.range()


def targets(panel: Panel, *queries: prometheus.Dataquery) -> Panel:
    for q in queries:
        panel = panel.with_target(q)
    return panel


def place(panel: Panel, title: str, span: int, height: int, description: str = "") -> Panel:
    panel = panel.title(title).span(span).height(height).datasource(DATASOURCE)
    return panel.description(description) if description else panel


def series(title: str, unit: str, *queries: prometheus.Dataquery, span: int = 12, description: str = "") -> Panel:
    return place(targets(timeseries.Panel().unit(unit), *queries), title, span, 8, description)


def last_value() -> ReduceDataOptions:
    return ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def single(title: str, *queries: prometheus.Dataquery, span: int, named: bool = False, unit: str = "") -> Panel:
    panel = targets(stat.Panel().reduce_options(last_value()), *queries)
    if named:
        panel = panel.text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    return place(panel.unit(unit) if unit else panel, title, span, 5)


def bars(title: str, unit: str, *queries: prometheus.Dataquery, span: int = 12, height: int = 8) -> Panel:
    panel = bargauge.Panel().reduce_options(last_value()).orientation(common.VizOrientation.HORIZONTAL)
    return place(targets(panel.unit(unit), *queries), title, span, height)


def quantiles(title: str, bucket: str, by: str, unit: str = "s", description: str = "", legend: str = "") -> Panel:
    """p50, p95 and p99 of a histogram, one line per `by` group (and per quantile)."""
    queries = [
        query(
            f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({bucket}[{RATE}])))",
            f"{legend} p{round(q * 100)}".strip(),
            "ABC"[i],
        )
        for i, q in enumerate(QUANTILES)
    ]
    return series(title, unit, *queries, description=description)


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def value_texts(texts: dict[int, str]) -> list[model.ValueMap]:
    return [model.ValueMap(options={str(v): model.ValueMappingResult(text=t) for v, t in texts.items()})]


def variable(name: str, label: str, definition: str, *, multi: bool = True) -> dashboard.QueryVariable:
    built = (
        dashboard.QueryVariable(name)
        .label(label)
        .query(definition)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return built.all_value(".*") if multi else built


def base(uid: str, title: str, description: str, tag: str, namespace_from: str) -> dashboard.Dashboard:
    """A kubeinfer dashboard: links to its siblings, the data source and the namespace variables."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["kubeinfer", tag])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .link(
            dashboard.DashboardLink("kubeinfer dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["kubeinfer"])
            .as_dropdown(True)
        )
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(variable("namespace", "Namespace", f"label_values({namespace_from}, namespace)"))
    )


PROMPT = sel('kind="prompt"')
SERVER_ERROR = sel('code=~"5.."')
NOT_COMPLETED = sel('status!="completed"')
MATRIX = sel('matrix=~"$matrix"')

# --- serving ----------------------------------------------------------------------------------------------------

VLLM = 'model_name=~"$model"', 'engine=~"$engine"'


def vllm_quantiles(title: str, name: str, description: str) -> Panel:
    bucket = f"vllm:{name}_bucket{sel(*VLLM)}"
    return quantiles(title, bucket, "model_name, engine", description=description, legend="{{model_name}} {{engine}}")


def serving() -> dashboard.Dashboard:
    inference = 'route=~"/v1/(chat/completions|completions|embeddings)"'
    board = (
        base(
            "kubeinfer-serving",
            "kubeinfer / Serving",
            "The gateway, llama-server and vLLM: vLLM-compatible latency percentiles, TTFT, tokens/s, cache hits, "
            "queue.",
            "serving",
            "vllm:e2e_request_latency_seconds_count",
        )
        .with_variable(
            variable(
                "model",
                "Model",
                'label_values(vllm:e2e_request_latency_seconds_count{namespace=~"$namespace"}, model_name)',
            )
        )
        .with_variable(
            variable(
                "engine",
                "Engine",
                "label_values(vllm:e2e_request_latency_seconds_count"
                '{namespace=~"$namespace", model_name=~"$model"}, engine)',
            )
        )
        .with_row(dashboard.Row("Requests (vLLM-compatible: llama.cpp measured by kubeinfer, vLLM by itself)"))
        .with_panel(
            vllm_quantiles(
                "Time to first token",
                "time_to_first_token_seconds",
                "vllm:time_to_first_token_seconds: llama.cpp streams through the gateway, every vLLM request.",
            )
        )
        .with_panel(
            vllm_quantiles(
                "Inter-token latency",
                "inter_token_latency_seconds",
                "vllm:inter_token_latency_seconds: the gap between two tokens of a stream.",
            )
        )
        .with_panel(
            vllm_quantiles(
                "End-to-end request latency",
                "e2e_request_latency_seconds",
                "vllm:e2e_request_latency_seconds: single requests and batch requests alike.",
            )
        )
        .with_panel(
            vllm_quantiles(
                "Queue time",
                "request_queue_time_seconds",
                "vllm:request_queue_time_seconds; for llama.cpp, the part of a request llama-server spent not "
                "computing.",
            )
        )
        .with_panel(
            series(
                "Requests running",
                "none",
                query(
                    f"sum by (model_name, engine) (vllm:num_requests_running{sel(*VLLM)})", "{{model_name}} {{engine}}"
                ),
                description="vllm:num_requests_running; for llama.cpp, the streams and batch requests kubeinfer "
                "has at the engine.",
            )
        )
        .with_panel(
            series(
                "Tokens per second",
                "none",
                query(
                    f"sum by (model_name, engine) (rate(vllm:generation_tokens_total{sel(*VLLM)}[{RATE}]))",
                    "{{model_name}} {{engine}} generated",
                ),
                query(
                    f"sum by (model_name, engine) (rate(vllm:prompt_tokens_total{sel(*VLLM)}[{RATE}]))",
                    "{{model_name}} {{engine}} prompt",
                    "B",
                ),
            )
        )
        .with_panel(
            series(
                "Prefix cache hit ratio",
                "percentunit",
                query(
                    f"sum by (model_name, engine) (rate(vllm:prefix_cache_hits_total{sel(*VLLM)}[{RATE}]))"
                    f" / sum by (model_name, engine) (rate(vllm:prefix_cache_queries_total{sel(*VLLM)}[{RATE}]))",
                    "{{model_name}} {{engine}}",
                ),
                description="Cached share of prompt tokens (vllm:prefix_cache_hits / queries, in tokens).",
            )
        )
        .with_panel(
            series(
                "Finished requests per second",
                "reqps",
                query(
                    "sum by (model_name, engine, finished_reason)"
                    f" (rate(vllm:request_success_total{sel(*VLLM)}[{RATE}]))",
                    "{{model_name}} {{engine}} {{finished_reason}}",
                ),
            )
        )
        .with_row(dashboard.Row("Gateway and llama-server"))
        .with_panel(
            series(
                "Requests per second by route and code",
                "reqps",
                query(
                    f"sum by (route, code) (rate(kubeinfer_gateway_requests_total{sel()}[{RATE}]))",
                    "{{route}} {{code}}",
                ),
            )
        )
        .with_panel(
            quantiles(
                "Gateway inference latency",
                f"kubeinfer_gateway_request_duration_seconds_bucket{sel(inference)}",
                "",
                description="Until the last byte of the response: a stream counts its whole generation.",
            )
        )
        .with_panel(
            quantiles(
                "Gateway time to first token (streams)",
                f"kubeinfer_gateway_stream_time_to_first_token_seconds_bucket{sel()}",
                "",
            )
        )
        .with_panel(
            series(
                "Tokens per second per stream",
                "none",
                *(
                    query(
                        f"histogram_quantile({q}, sum by (le)"
                        f" (rate(kubeinfer_gateway_stream_tokens_per_second_bucket{sel()}[{RATE}])))",
                        f"p{round(q * 100)}",
                        ref,
                    )
                    for q, ref in ((0.05, "A"), (0.5, "B"))
                ),
                description="p5 is the slowest streams' rate.",
            )
        )
        .with_panel(
            series(
                "Proxied tokens per second",
                "none",
                query(f"sum by (kind) (rate(kubeinfer_gateway_tokens_total{sel()}[{RATE}]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Engine generation throughput",
                "none",
                query(f"sum(rate(llamacpp:tokens_predicted_total{sel()}[{RATE}]))", "generated tokens/s"),
                query(f"sum(rate(llamacpp:prompt_tokens_total{sel()}[{RATE}]))", "prompt tokens/s", "B"),
                description="From llama-server's own /metrics: all its work, batches and single requests alike.",
            )
        )
        .with_panel(
            series(
                "Prompt cache hits",
                "percentunit",
                query(
                    f"sum(rate(llamacpp:prompt_tokens_cached_total{sel()}[{RATE}]))"
                    f" / (sum(rate(llamacpp:prompt_tokens_cached_total{sel()}[{RATE}]))"
                    f" + sum(rate(llamacpp:prompt_tokens_total{sel()}[{RATE}])))",
                    "engine: cached share of prompt tokens",
                ),
                query(
                    f"sum(rate(kubeinfer_gateway_cached_prompt_tokens_total{sel()}[{RATE}]))"
                    f" / sum(rate(kubeinfer_gateway_tokens_total{PROMPT}[{RATE}]))",
                    "gateway: single requests",
                    "B",
                ),
            )
        )
        .with_panel(
            series(
                "Queue depth",
                "none",
                query(f"sum(llamacpp:requests_deferred{sel()})", "deferred at the engine"),
                query(f"sum(llamacpp:requests_processing{sel()})", "processing at the engine", "B"),
                query(f"sum(kubeinfer_gateway_requests_in_flight{sel()})", "in flight at the gateway", "C"),
            )
        )
        .with_panel(
            series(
                "Busy slots per decode",
                "none",
                query(f"avg(llamacpp:n_busy_slots_per_decode{sel()})", "busy slots"),
                description="How full the engine's parallel slots are per decode step.",
            )
        )
        .with_panel(
            series(
                "Errors (5xx share)",
                "percentunit",
                query(
                    f"(sum(rate(kubeinfer_gateway_requests_total{SERVER_ERROR}[{RATE}])) or vector(0))"
                    f" / sum(rate(kubeinfer_gateway_requests_total{sel()}[{RATE}]))",
                    "5xx",
                ),
                description="Share of answers with a 5xx code; 0 while there are none.",
            )
        )
    )
    return board


# --- batch jobs -------------------------------------------------------------------------------------------------


def batch_jobs() -> dashboard.Dashboard:
    progress = gauge.Panel().reduce_options(last_value()).unit("percentunit").min(0).max(1)
    return (
        base(
            "kubeinfer-batch-jobs",
            "kubeinfer / Batch jobs",
            "OpenAI-style batches run by the gateway's workers: progress, throughput, errors, tokens.",
            "batch",
            "kubeinfer_batch_running",
        )
        .with_panel(
            single("Batch running", query(f"max(kubeinfer_batch_running{sel()})", "running"), span=4).mappings(
                value_texts({0: "idle", 1: "running"})
            )
        )
        .with_panel(
            place(
                targets(progress, query(f"max(kubeinfer_batch_progress_ratio{sel()})", "progress")),
                "Progress of the running batch",
                5,
                5,
            )
        )
        .with_panel(
            single("Requests in flight", query(f"sum(kubeinfer_batch_requests_in_flight{sel()})", "in flight"), span=5)
        )
        .with_panel(
            single(
                "Batches finished",
                query(f"sum by (status) (kubeinfer_batches_finished_total{sel()})", "{{status}}"),
                span=10,
                named=True,
            )
        )
        .with_panel(
            series(
                "Throughput (requests/s by status)",
                "reqps",
                query(f"sum by (status) (rate(kubeinfer_batch_requests_total{sel()}[{RATE}]))", "{{status}}"),
            )
        )
        .with_panel(
            series(
                "Error rate",
                "percentunit",
                query(
                    f"sum(rate(kubeinfer_batch_requests_total{NOT_COMPLETED}[{RATE}]))"
                    f" / sum(rate(kubeinfer_batch_requests_total{sel()}[{RATE}]))",
                    "failed or expired",
                ),
                description="Share of finished requests that failed or expired; empty while no request finishes.",
            )
        )
        .with_panel(
            series(
                "Tokens per second",
                "none",
                query(f"sum by (kind) (rate(kubeinfer_batch_tokens_total{sel()}[{RATE}]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Prompt cache hit ratio",
                "percentunit",
                query(
                    f"sum(rate(kubeinfer_batch_cached_prompt_tokens_total{sel()}[{RATE}]))"
                    f" / sum(rate(kubeinfer_batch_tokens_total{PROMPT}[{RATE}]))",
                    "cached share of prompt tokens",
                ),
                description="How much of the prompts the engine reused from its cache; prefix grouping raises it.",
            )
        )
        .with_panel(quantiles("Request duration", f"kubeinfer_batch_request_duration_seconds_bucket{sel()}", ""))
        .with_panel(
            series(
                "Retries per second",
                "none",
                query(f"sum(rate(kubeinfer_batch_request_retries_total{sel()}[{RATE}]))", "retries"),
            )
        )
        .with_panel(
            single(
                "Tokens processed",
                query(f"sum by (kind) (kubeinfer_batch_tokens_total{sel()})", "{{kind}}"),
                span=24,
                named=True,
            )
        )
    )


# --- benchmark matrix -------------------------------------------------------------------------------------------

CELL = 'matrix=~"$matrix"', 'model=~"$model"'
PROFILE = (*CELL, 'profile=~"$profile"')
COLOUR_BY = "kubeinfer_bench_(rating|tokens_per_second|time_to_first_token_seconds)"


def rating_colours() -> dashboard.ThresholdsConfig:
    return thresholds(*((None if v == 0 else float(v), colour) for v, (_, colour) in sorted(RATINGS.items())))


def benchmark_matrix() -> dashboard.Dashboard:
    grid = (
        table.Panel()
        .thresholds(rating_colours())
        .mappings(value_texts({v: text for v, (text, _) in RATINGS.items()}))
        .cell_options(common.TableColoredBackgroundCellOptions())
        .with_transformation(
            model.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"rowField": "model", "columnField": "quantization", "valueField": "Value"},
            )
        )
    )
    over_time = (
        heatmap.Panel()
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.UNKNOWN))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_model.HeatmapColorMode.SCHEME)
            .scheme("RdYlGn")
            .scale(heatmap_model.HeatmapColorScale.LINEAR)
            .steps(64)
        )
        .cell_values(heatmap.CellValues())
        .y_axis(heatmap.YAxisConfig().axis_placement(common.AxisPlacement.LEFT))
        .show_value(common.VisibilityMode.AUTO)
    )
    return (
        base(
            "kubeinfer-benchmark-matrix",
            "kubeinfer / Benchmark matrix",
            "Cells of BenchmarkMatrix runs compared: ratings, tokens/s, TTFT, load time, memory (operator metrics).",
            "benchmark",
            "kubeinfer_bench_rating",
        )
        .with_variable(
            variable("matrix", "Matrix", 'label_values(kubeinfer_bench_rating{namespace=~"$namespace"}, matrix)')
        )
        .with_variable(variable("model", "Model", 'label_values(kubeinfer_bench_rating{matrix=~"$matrix"}, model)'))
        .with_variable(
            variable(
                "profile",
                "Profile",
                'label_values(kubeinfer_bench_rating{matrix=~"$matrix", model=~"$model"}, profile)',
            )
        )
        .with_variable(
            variable(
                "metric",
                "Colour by",
                f'label_values({{__name__=~"{COLOUR_BY}", matrix=~"$matrix"}}, __name__)',
                multi=False,
            )
        )
        .with_panel(
            place(
                targets(
                    grid,
                    query(f"min by (model, quantization) (kubeinfer_bench_rating{sel(*PROFILE)})", instant=True),
                ),
                "Rating heat map (model x quantization)",
                12,
                9,
                "Worst rating across the selected profiles of each cell, one row per model and one column per "
                "quantization, coloured failed (red) to excellent (green).",
            )
        )
        .with_panel(
            place(
                targets(
                    piechart.Panel().reduce_options(last_value()),
                    query(f"sum by (status) (kubeinfer_operator_cells{MATRIX})", "{{status}}"),
                ),
                "Cells by status",
                6,
                9,
            )
        )
        .with_panel(
            bars(
                "Profiles passed per cell",
                "none",
                query(
                    f"sum by (model, quantization) (kubeinfer_bench_profile_passed{sel(*PROFILE)})",
                    "{{model}}/{{quantization}}",
                ),
                span=6,
                height=9,
            )
        )
        .with_panel(
            place(
                targets(
                    over_time,
                    query(
                        f'max by (model, quantization) ({{__name__=~"$metric", {sel(*PROFILE)[1:-1]}}})',
                        "{{model}}/{{quantization}}",
                    ),
                ),
                "Cells over time, coloured by the chosen metric",
                24,
                9,
                "One row per model x quantization; the colour is the metric the `Colour by` variable picks "
                "(rating, tokens/s or TTFT) as the cells finish.",
            )
        )
        .with_panel(
            bars(
                "Tokens per second per cell",
                "none",
                query(
                    f"max by (model, quantization, profile) (kubeinfer_bench_tokens_per_second{sel(*PROFILE)})",
                    "{{model}}/{{quantization}} {{profile}}",
                ),
            )
        )
        .with_panel(
            bars(
                "Time to first token per cell",
                "s",
                query(
                    "max by (model, quantization, profile)"
                    f" (kubeinfer_bench_time_to_first_token_seconds{sel(*PROFILE)})",
                    "{{model}}/{{quantization}} {{profile}}",
                ),
            )
        )
        .with_panel(
            place(
                targets(
                    table.Panel().with_transformation(model.DataTransformerConfig(id_val="merge", options={})),
                    *(
                        query(
                            f"max by ({by}) (kubeinfer_bench_{name}{sel(*(PROFILE if 'profile' in by else CELL))})",
                            ref=ref,
                            instant=True,
                        )
                        for ref, name, by in (
                            ("A", "rating", "model, quantization, profile"),
                            ("B", "tokens_per_second", "model, quantization, profile"),
                            ("C", "time_to_first_token_seconds", "model, quantization, profile"),
                            ("D", "load_seconds", "model, quantization"),
                            ("E", "estimated_memory_bytes", "model, quantization"),
                        )
                    ),
                ),
                "Cells",
                24,
                10,
                "Rating, tokens/s and TTFT of each profile; server load time and estimated memory of each cell.",
            )
        )
        .with_panel(
            bars(
                "Server load time per cell",
                "s",
                query(
                    f"max by (model, quantization) (kubeinfer_bench_load_seconds{sel(*CELL)})",
                    "{{model}}/{{quantization}}",
                ),
            )
        )
        .with_panel(
            bars(
                "Model size and estimated memory",
                "bytes",
                query(
                    f"max by (model, quantization) (kubeinfer_bench_model_size_bytes{sel(*CELL)})",
                    "{{model}}/{{quantization}} file",
                ),
                query(
                    f"max by (model, quantization) (kubeinfer_bench_estimated_memory_bytes{sel(*CELL)})",
                    "{{model}}/{{quantization}} estimate",
                    "B",
                ),
            )
        )
    )


# --- operator ---------------------------------------------------------------------------------------------------


def operator_health() -> dashboard.Dashboard:
    operator = f"kubeinfer_operator_matrices_running{sel()}"
    return (
        base(
            "kubeinfer-operator",
            "kubeinfer / Operator health",
            "The kopf operator: matrices running, cells by status and rule, phase durations, errors.",
            "operator",
            "kubeinfer_operator_matrices_running",
        )
        .with_panel(single("Matrices running", query(f"sum({operator})", "running"), span=6))
        .with_panel(
            single(
                "Reconcile errors (last hour)",
                query(
                    f"sum by (reason) (increase(kubeinfer_operator_reconcile_errors_total{sel()}[1h]))", "{{reason}}"
                ),
                span=6,
                named=True,
            ).thresholds(thresholds((None, "green"), (1, "red")))
        )
        .with_panel(
            place(
                targets(table.Panel(), query(f"sum by (status, rule) (kubeinfer_operator_cells{sel()})", instant=True)),
                "Cells by status and rule",
                12,
                5,
            )
        )
        .with_panel(
            series(
                "Cells finished per minute",
                "none",
                query(
                    f"60 * sum by (status, rule) (rate(kubeinfer_operator_cells_finished_total{sel()}[{RATE}]))",
                    "{{status}} {{rule}}",
                ),
            )
        )
        .with_panel(
            quantiles(
                "Cell phase duration",
                f"kubeinfer_operator_cell_phase_duration_seconds_bucket{sel()}",
                "phase",
                legend="{{phase}}",
            )
        )
        .with_panel(
            bars(
                "Mean cell phase duration",
                "s",
                query(
                    f"sum by (phase) (kubeinfer_operator_cell_phase_duration_seconds_sum{sel()})"
                    f" / sum by (phase) (kubeinfer_operator_cell_phase_duration_seconds_count{sel()})",
                    "{{phase}}",
                ),
            )
        )
        .with_panel(
            series(
                "Reconcile errors per minute",
                "none",
                query(
                    f"60 * sum by (reason) (rate(kubeinfer_operator_reconcile_errors_total{sel()}[{RATE}]))",
                    "{{reason}}",
                ),
            )
        )
        .with_panel(
            series(
                "Operator memory",
                "bytes",
                query(f"process_resident_memory_bytes{sel()} and on (instance, job) {operator}", "{{instance}}"),
                description="Resident memory of the processes that export operator metrics.",
            )
        )
        .with_panel(
            series(
                "Operator CPU",
                "percentunit",
                query(
                    f"rate(process_cpu_seconds_total{sel()}[{RATE}]) and on (instance, job) {operator}", "{{instance}}"
                ),
            )
        )
    )


DASHBOARDS = {
    "batch-jobs.json": batch_jobs,
    "benchmark-matrix.json": benchmark_matrix,
    "operator-health.json": operator_health,
    "serving.json": serving,
}


def to_json(board: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana stores it; query variables also carry `definition` (the query as text), as
    Grafana's own editor writes it."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for var in data["templating"]["list"]:
        if var["type"] == "query":
            var["definition"] = var["query"]
    return data


def render_all() -> dict[str, str]:
    """File name -> JSON text, byte-stable (sorted keys, two-space indent, trailing newline)."""
    return {name: json.dumps(to_json(build()), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}
