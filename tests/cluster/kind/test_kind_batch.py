"""A batch through the URL `kind-up` printed, with the `openai` client, on the chart's own model server.

The gateway runs in cluster mode (charts/kubeinfer/ci/kind-values.yaml): the batch becomes a BatchJob whose
worker pods, containers on the kind node, send every request to the chart's llama-server replicas. A worker pod
is deleted while the batch runs; the batch still ends with exactly one line per custom_id. 400 requests, as the
real-cluster issue's "done when" names them, of 4 tokens each: the deletion lands after a tenth is answered and
leaves a replacement pod most of the batch to resume (the load figure is `make bench`'s
perf/cluster_batch_load.py).
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from typing import Any

import pytest
from openai import OpenAI

from testbed.kind import NAMESPACE, KindCluster
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(3600)

COUNT = 400
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def requests_jsonl(model: str, count: int) -> bytes:
    lines = []
    for i in range(count):
        body = {
            "model": model,
            "max_tokens": 4,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "You answer with one word."},
                {"role": "user", "content": f"Is {i} even or odd?"},
            ],
        }
        lines.append(json.dumps({"custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    return ("\n".join(lines) + "\n").encode()


def worker_pods(cluster: KindCluster, batch_id: str) -> list[dict[str, Any]]:
    selector = f"kubeinfer.dev/batch={batch_id},kubeinfer.dev/component=worker"
    items: list[dict[str, Any]] = cluster.get_json("pods", "-n", NAMESPACE, "-l", selector)["items"]
    return items


def test_a_400_request_batch_survives_a_deleted_worker_pod(kind_cluster: KindCluster) -> None:
    client = OpenAI(base_url=kind_cluster.base_url, api_key=kind_cluster.api_key, timeout=120, max_retries=5)
    model = client.models.list().data[0].id
    upload = client.files.create(file=("kind-batch.jsonl", io.BytesIO(requests_jsonl(model, COUNT))), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")

    def completed_at_least(n: int) -> bool:
        current = client.batches.retrieve(batch.id)
        counts = current.request_counts
        return current.status in TERMINAL or (counts is not None and counts.completed >= n)

    wait_for(lambda: completed_at_least(COUNT // 10), timeout=900, interval=1, what="a tenth of the batch done")
    running = [p for p in worker_pods(kind_cluster, batch.id) if p["status"].get("phase") == "Running"]
    assert running, "no worker pod running while the batch is in progress"
    victim = running[0]
    for status in victim["status"]["containerStatuses"]:
        assert status["containerID"].startswith("containerd://")
    kind_cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", NAMESPACE, "--wait=false")

    deadline = time.monotonic() + 1800
    while (done := client.batches.retrieve(batch.id)).status not in TERMINAL:
        assert time.monotonic() < deadline, f"batch not finished: {done}"
        time.sleep(2)
    assert done.status == "completed", done
    assert done.output_file_id
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines() if line]
    errors = []
    if done.error_file_id:
        errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines() if line]
    ids = Counter(line["custom_id"] for line in output + errors)
    assert set(ids) == {f"r-{i}" for i in range(COUNT)}
    assert max(ids.values()) == 1, [k for k, v in ids.items() if v > 1][:5]
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
