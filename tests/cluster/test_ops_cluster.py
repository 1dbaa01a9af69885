"""`kubeinfer workers` / `kubeinfer batch` and the console's logs page on the kind cluster.

A ModelInstall served by one replica runs as a container on the kind node; the operator (a process of this
machine) runs BatchJobs; the cluster-mode gateway runs as its own ServiceAccount (exactly GATEWAY_RULES). Every
read and action goes through the API server: pod status, progress ConfigMaps, `pods/log` (the kubelet's),
pod deletion, BatchJob patches. The CLI runs in-process with the admin kubeconfig.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from typer.testing import CliRunner

from kubeinfer.cli.app import app as cli
from kubeinfer.cluster.workers import ClusterWorkers
from kubeinfer.kube.client import api_client
from testbed.batch_env import INSTALL, MODEL, NAMESPACE, Env, batch_env, install_ready
from testbed.browser import signed_in_page
from testbed.gateway_process import KEY
from testbed.kind import KindCluster
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(1800)

runner = CliRunner()


@pytest.fixture(scope="module")
def env(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    batch_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("ops-cluster")
    with batch_env(kube_cluster, cluster_models_root, workdir, batch_data_dir, replicas=1) as value:
        yield value


def cli_run(env: Env, *args: str, namespace: str = NAMESPACE) -> Any:
    args = (*args, "-n", namespace, "--kubeconfig", str(env.cluster.kubeconfig))
    return runner.invoke(cli, args, env={"COLUMNS": "250"})


def cli_json(env: Env, *args: str) -> Any:
    result = cli_run(env, *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def servers(env: Env) -> list[dict[str, Any]]:
    return [w for w in cli_json(env, "workers", "list") if w["kind"] == "server"]


def chat(endpoint: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    httpx.post(f"{endpoint}/v1/chat/completions", json=body, timeout=60).raise_for_status()


def test_status_lists_the_server_pod_ready(env: Env) -> None:
    (server,) = servers(env)
    assert server["state"] == "Running"
    assert server["ready"] is True
    assert server["model"].startswith(INSTALL)
    assert server["last_heartbeat"] is not None
    assert server["memory_bytes"] is not None  # the pod's memory supervisor, read through the pod proxy
    assert server["memory_bytes"] > 20 * 2**20
    table = cli_run(env, "workers", "list")
    assert table.exit_code == 0
    assert server["name"] in table.stdout


def test_logs_come_from_llama_server_through_the_api_server(env: Env) -> None:
    (server,) = servers(env)
    result = cli_run(env, "workers", "logs", server["name"], "--tail", "1000")
    assert result.exit_code == 0, result.output
    assert "model loaded" in result.stdout
    assert len(cli_run(env, "workers", "logs", server["name"], "--tail", "3").stdout.splitlines()) == 3

    received: list[bytes] = []
    ops = ClusterWorkers(NAMESPACE, api_client(env.cluster.kubeconfig))
    stream = ops.logs(server["name"], tail=0, follow=True)

    def read() -> None:
        for chunk in stream:
            received.append(chunk)

    threading.Thread(target=read, daemon=True).start()
    chat(env.endpoints[0])
    wait_for(lambda: b"print_timing" in b"".join(received), timeout=60, what="followed log shows the request")


def test_batches_and_their_workers_are_listed_shown_and_cancelled(env: Env, tmp_path: Path) -> None:
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"Count to {i}."}], "max_tokens": 16},
        }
        for i in range(600)
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    client = env.client()
    with path.open("rb") as handle:
        file = client.files.create(file=handle, purpose="batch")
    batch_id = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id

    def progressing() -> list[dict[str, Any]] | None:
        workers = [w for w in cli_json(env, "workers", "list") if w["kind"] == "worker"]
        busy = [w for w in workers if w["batch_id"] == batch_id and (w["done"] or 0) >= 1]
        return busy or None

    busy = wait_for(progressing, timeout=300, interval=1, what="a worker reports progress")
    assert busy[0]["model"] == MODEL
    assert busy[0]["total"] > 0
    assert busy[0]["last_heartbeat"] is not None
    assert busy[0]["detail"].startswith("shard ")
    worker_log = cli_run(env, "workers", "logs", busy[0]["name"])
    assert worker_log.exit_code == 0, worker_log.output

    listed = cli_json(env, "batch", "list")
    assert batch_id in [b["id"] for b in listed]
    shown = cli_json(env, "batch", "get", batch_id)
    assert shown["spec"]["inputFileId"] == file.id
    assert cli_run(env, "batch", "get", batch_id).exit_code == 0
    cancelled = cli_json(env, "batch", "cancel", batch_id)
    assert cancelled["status"] == "cancelling"
    assert cli_json(env, "batch", "get", batch_id)["spec"]["cancel"] is True
    wait_for(
        lambda: (cli_json(env, "batch", "get", batch_id).get("status") or {}).get("status") == "cancelled",
        timeout=300,
        interval=2,
        what="batch cancelled",
    )

    # a validate pod is kubeinfer's but neither a server nor a worker: not restartable from here
    validate = env.cluster.get_json("pods", "-n", NAMESPACE, "-l", f"kubeinfer.dev/batch={batch_id}")["items"]
    others = [p["metadata"]["name"] for p in validate if p["metadata"]["labels"]["kubeinfer.dev/component"] != "worker"]
    if others:
        refused = cli_run(env, "workers", "restart", others[0])
        assert refused.exit_code == 1
        assert "is not a kubeinfer model server or batch worker" in refused.output


def test_console_logs_page_shows_and_searches_a_pod_log(env: Env, browser: Browser) -> None:
    (server,) = servers(env)
    page = signed_in_page(browser, env.gateway.url, KEY)
    try:
        page.goto("/ui/logs")
        table = page.get_by_test_id("pod-logs")
        expect(table).to_contain_text(server["name"])
        table.get_by_role("link", name=server["name"]).click()
        expect(page.get_by_test_id("log-lines")).not_to_be_empty()
        search = page.get_by_test_id("log-search")
        search.get_by_label("search").fill("model loaded")
        search.get_by_label("last").fill("5000")
        search.get_by_role("button", name="Show").click()
        expect(page.get_by_test_id("log-lines")).to_contain_text("model loaded")
        expect(page.get_by_test_id("log-summary")).to_contain_text("contain “model loaded”")
        with page.expect_download() as download:
            page.get_by_test_id("log-download").click()
        assert download.value.suggested_filename == f"{server['name']}.log"
        assert "model loaded" in Path(download.value.path()).read_text()
    finally:
        page.context.close()


def test_restart_deletes_the_pod_and_a_new_one_becomes_ready(env: Env) -> None:
    (before,) = servers(env)
    result = cli_run(env, "workers", "restart", before["name"])
    assert result.exit_code == 0, result.output
    assert f"deleted pod {before['name']}" in result.stdout

    def replaced() -> dict[str, Any] | None:
        now = [s for s in servers(env) if s["name"] != before["name"]]
        return now[0] if now and now[0]["ready"] else None

    after = wait_for(replaced, timeout=300, interval=1, what="a replacement server pod Ready")
    assert after["state"] == "Running"

    def new_endpoint() -> dict[str, Any] | None:
        body = install_ready(env.cluster, 1)
        return body if body and body["status"]["serving"]["endpoints"] != env.endpoints else None

    body = wait_for(new_endpoint, timeout=120, what="the ModelInstall names the new endpoint")
    chat(body["status"]["serving"]["endpoints"][0])


def test_unknown_names_ids_and_namespaces_are_clear_errors(env: Env) -> None:
    for args in (["workers", "logs", "no-such-pod"], ["workers", "restart", "no-such-pod"]):
        result = cli_run(env, *args)
        assert result.exit_code == 1
        assert f"no pod named no-such-pod in namespace {NAMESPACE}" in result.output
    for args in (["batch", "get", "batch-nope"], ["batch", "cancel", "batch-nope"]):
        result = cli_run(env, *args)
        assert result.exit_code == 1
        assert f"no batch batch-nope in namespace {NAMESPACE}" in result.output
    missing = cli_run(env, "workers", "list", namespace="no-such-namespace")
    assert missing.exit_code == 1
    assert "namespace no-such-namespace does not exist" in missing.output
