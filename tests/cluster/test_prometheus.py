"""Real Prometheus scrapes the operator, the gateway and llama-server while a matrix and a batch run.

Everything here is real: Debian's prometheus and promtool (hack/prometheus/install.sh), the operator against
the kind cluster running a one-cell BenchmarkMatrix whose pods are containers on the kind node, the gateway in
its own process with the session's llama-server, and the `openai` client. Then every PromQL expression of every
dashboard in charts/kubeinfer/dashboards must return data, and promtool must accept each /metrics page.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from kubeinfer.engines.llamacpp_server import LlamaServer, free_port
from kubeinfer.settings import Settings
from testbed.gateway_process import KEY, MODEL, GatewayProcess
from testbed.kind import REPO_ROOT, KindCluster
from testbed.namespace_env import namespace_env
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(1800)

NAMESPACE = "kubeinfer-operator-test"
MATRIX_NAME = "metrics"
DASHBOARDS = REPO_ROOT / "charts" / "kubeinfer" / "dashboards"
#: Grafana's built-in variables, as Grafana would fill them for a dashboard showing the last hour.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
#: The cheapest matrix that still runs one cell for real: one model, one quantization, one short profile.
MATRIX = {
    "apiVersion": "kubeinfer.dev/v1alpha1",
    "kind": "BenchmarkMatrix",
    "metadata": {"name": MATRIX_NAME},
    "spec": {
        "models": [{"name": "smollm2-135m", "size": "135M", "files": {"Q4_1": "pypi:smollm2-135m"}}],
        "engine": {"ctxSize": 1024, "threads": 1},
        "limits": {"maxLoadTimeSeconds": 120},
        "profiles": {
            "interactive": {"maxTokens": 8, "runs": 1, "maxVariancePercent": 10000},
            "longContext": {"enabled": False},
            "batch": {"enabled": False},
            "quality": {"enabled": False},
            "stress": {"enabled": False},
        },
    },
}
#: What promtool says about llama-server's own page, which we cannot change: names with a colon (its
#: `llamacpp:` prefix, a recording-rule style name) and one counter without `_total`.
#: vLLM's own metric names, which the gateway exports unchanged so vLLM dashboards work (docs/metrics.md).
GATEWAY_LINT = (re.compile(r"^vllm:\w+ metric names should not contain ':'$"),)
LLAMA_SERVER_LINT = (
    re.compile(r"^llamacpp:\w+ metric names should not contain ':'$"),
    re.compile(r'^llamacpp:n_tokens_max counter metrics should have "_total" suffix$'),
)


@dataclass
class Target:
    job: str
    url: str


class Prometheus:
    """A `prometheus` process on a loopback port with its own config and a temporary TSDB."""

    def __init__(self, binary: Path, workdir: Path, targets: list[Target]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": t.job, "static_configs": [{"targets": [t.url.removeprefix("http://")]}]} for t in targets
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def prometheus_binaries(settings: Settings) -> Path:
    """The cached prometheus/promtool folder; installs it (idempotent) so the test never skips."""
    bin_dir = settings.cache_dir / "prometheus" / "bin"
    if not (bin_dir / "prometheus").is_file():
        subprocess.run([str(REPO_ROOT / "hack" / "prometheus" / "install.sh")], check=True)
    return bin_dir


# --- dashboards ---------------------------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panel_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows' nested panels included."""
    found = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((panel["title"], target["expr"]))
    return found


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown variable ${name} in {expr}"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def regex_of(values: list[str]) -> str:
    """Grafana's `All` value of a multi-value variable for Prometheus: an alternation, metacharacters escaped."""
    escaped = [re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def resolve_variables(dashboard: dict[str, Any], prometheus: Prometheus) -> dict[str, str]:
    """Fill each `label_values(selector, label)` variable from Prometheus, as Grafana's `All` would."""
    values = dict(BUILTIN_VARIABLES)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        assert variable["type"] == "query", variable
        query = substitute(variable["definition"], values)
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"unsupported variable query {query}"
        found = prometheus.api(f"label/{match.group(2)}/values", **{"match[]": match.group(1)})
        if not found and variable.get("allValue"):
            # A label this Prometheus's static targets do not carry (`namespace`, which a PodMonitor adds in a
            # cluster): Grafana's All then sends the variable's allValue.
            values[variable["name"]] = variable["allValue"]
            continue
        assert found, f"variable {variable['name']}: {query} has no values"
        values[variable["name"]] = regex_of(found)
    return values


# --- the running stack --------------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus: Prometheus
    promtool: Path
    targets: dict[str, Target]


BATCH_LINES = 6


def run_batch(gateway: GatewayProcess) -> None:
    """A streamed and a plain request, then a small batch through the official client, to its end."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Tell me about the sea."}]
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
    lines = [
        {
            "custom_id": f"m{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": f"Count to {i}."}]},
        }
        for i in range(BATCH_LINES)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=600)
    assert done.request_counts is not None
    assert done.request_counts.completed == len(lines)


@pytest.fixture(scope="module")
def stack(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    llama_server: LlamaServer,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("prometheus")
    bin_dir = prometheus_binaries(settings)
    metrics_port = free_port()
    operator_env = {"KUBEINFER_OPERATOR__METRICS_PORT": str(metrics_port)}
    with namespace_env(kube_cluster, NAMESPACE, cluster_models_root, work, operator_env=operator_env) as env:
        operator = env.operator
        assert operator is not None
        gateway = env.start_gateway(llama_server.base_url, cluster_mode=False, data_dir=work / "gateway")
        targets = {
            "operator": Target("kubeinfer-operator", f"http://127.0.0.1:{metrics_port}"),
            "gateway": Target("kubeinfer-gateway", gateway.url),
            "llama-server": Target("llama-server", llama_server.base_url),
        }
        prometheus = Prometheus(bin_dir / "prometheus", work, list(targets.values()))
        try:
            wait_for(prometheus.ready, timeout=60)
            wait_for(prometheus.targets_up, timeout=60)
            kube_cluster.kubectl("delete", "benchmarkmatrix", MATRIX_NAME, "-n", NAMESPACE, "--ignore-not-found")
            kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(MATRIX))
            run_batch(gateway)

            def matrix_finished() -> dict[str, Any] | None:
                assert operator.running, operator.log_tail()
                status = kube_cluster.get_json("benchmarkmatrix", MATRIX_NAME, "-n", NAMESPACE).get("status") or {}
                return status if status.get("phase") in ("Completed", "Failed") else None

            status = wait_for(matrix_finished, timeout=1200, interval=1)
            assert status["phase"] == "Completed", status.get("conditions")

            def scraped_after_the_work() -> bool:
                """Every test reads Prometheus once: wait for a scrape that saw the batch and the matrix end."""
                query = 'sum(kubeinfer_batch_requests_total{status="completed"})'
                completed = prometheus.api("query", query=query)["result"]
                ratings = prometheus.api("query", query="kubeinfer_bench_rating")["result"]
                return bool(completed) and float(completed[0]["value"][1]) >= BATCH_LINES and bool(ratings)

            wait_for(scraped_after_the_work, timeout=120, interval=1)
            yield Stack(prometheus, bin_dir / "promtool", targets)
        finally:
            prometheus.stop()


def empty_expressions(prometheus: Prometheus) -> list[str]:
    empty = []
    for path in dashboard_files():
        dashboard = json.loads(path.read_text())
        values = resolve_variables(dashboard, prometheus)
        for title, expr in panel_expressions(dashboard):
            query = substitute(expr, values)
            if not prometheus.api("query", query=query)["result"]:
                empty.append(f"{path.name} / {title}: {query}")
    return empty


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    assert len(dashboard_files()) == 4
    last: list[str] = []

    def all_answer() -> bool:
        try:
            last[:] = empty_expressions(stack.prometheus)
        except AssertionError as exc:  # a dashboard variable without values yet: try again
            last[:] = [str(exc)]
            return False
        return not last

    try:
        wait_for(all_answer, timeout=120, interval=2)
    except AssertionError:
        pytest.fail("dashboard expressions without data:\n" + "\n".join(last))


def test_benchmark_results_are_exported_per_cell(stack: Stack) -> None:
    matrix = f"{NAMESPACE}/{MATRIX_NAME}"
    result = stack.prometheus.api("query", query=f'kubeinfer_bench_tokens_per_second{{matrix="{matrix}"}}')["result"]
    assert [r["metric"]["profile"] for r in result] == ["interactive"]
    assert {r["metric"]["model"] + "/" + r["metric"]["quantization"] for r in result} == {"smollm2-135m/Q4_1"}
    assert float(result[0]["value"][1]) > 0
    cells = stack.prometheus.api("query", query=f'kubeinfer_operator_cells{{matrix="{matrix}"}} > 0')["result"]
    assert sum(float(c["value"][1]) for c in cells) == 1
    assert cells[0]["metric"]["status"] in ("passed", "partial")


def test_batch_and_stream_metrics_count_what_was_sent(stack: Stack) -> None:
    query = stack.prometheus.api
    # The batch counters are the gateway's (the operator's process registers them at zero too: the job label).
    completed = query("query", query='kubeinfer_batch_requests_total{status="completed",job="kubeinfer-gateway"}')
    assert float(completed["result"][0]["value"][1]) >= BATCH_LINES
    ttft = query("query", query="kubeinfer_gateway_stream_time_to_first_token_seconds_count")["result"]
    assert float(ttft[0]["value"][1]) >= 1
    ids = query("label/__name__/values")
    labels = set(query("labels"))
    assert not labels & {"custom_id", "batch_id", "request_id", "file_id", "project"}
    assert any(name.startswith("llamacpp:") for name in ids)


@pytest.mark.parametrize("component", ["gateway", "operator", "llama-server"])
def test_promtool_check_metrics(stack: Stack, component: str) -> None:
    page = httpx.get(f"{stack.targets[component].url}/metrics", timeout=10).text
    check = subprocess.run(
        [str(stack.promtool), "check", "metrics"], input=page, capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (check.stdout + check.stderr).splitlines() if line.strip()]
    if component == "llama-server":
        assert problems, "llama-server's page now lints clean: drop LLAMA_SERVER_LINT"
        unexpected = [p for p in problems if not any(rule.match(p) for rule in LLAMA_SERVER_LINT)]
        assert not unexpected, unexpected
    elif component == "gateway":
        assert any(rule.match(p) for p in problems for rule in GATEWAY_LINT), "no vllm:* histogram on the page"
        unexpected = [p for p in problems if not any(rule.match(p) for rule in GATEWAY_LINT)]
        assert not unexpected, unexpected
    else:
        assert not problems
        assert check.returncode == 0
