"""Files in an S3-compatible bucket (moto's server on 127.0.0.1) with the real llama-server.

The embedded gateway is driven by the official `openai` client; the cluster batch steps (validate, worker,
merge) run as the operator's Jobs would run them, with `KUBEINFER_STORAGE__*` in their environment. Those
steps write their results to ConfigMaps and look the model's replicas up through the Kubernetes API; with no
control plane here, these two calls are replaced by a dict and the session's llama-server
(tests/cluster/test_batch_cluster.py covers them against a real API server).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import typer
import uvicorn

from kubeinfer.engines.llamacpp_server import LlamaServer, free_port
from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.cluster_batches import ClusterBatchService, record_of
from kubeinfer.settings import GatewaySettings, Settings, StorageSettings
from kubeinfer.steps import batch as batch_cli
from kubeinfer.storage.files import FileService
from kubeinfer.storage.records import MetadataStore
from kubeinfer.storage.s3 import S3BlobStore
from testbed.s3 import S3Server, s3_server
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(600)

MODEL = "smollm2-135m"
KEY = "sk-s3"
BATCH = "batch-0000000000000000000000s3"


def chat_lines(count: int) -> bytes:
    lines = []
    for i in range(count):
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"Say {i}"}], "max_tokens": 4}
        lines.append(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@contextmanager
def gateway(data_dir: Path, storage: StorageSettings, engine_url: str) -> Iterator[openai.OpenAI]:
    """The gateway in this process on a free port, with `storage` as its file store."""
    settings = Settings(gateway=GatewaySettings(data_dir=data_dir, api_keys=f"{KEY}=s3", model=MODEL), storage=storage)
    port = free_port()
    app = create_app(settings, engine_url=engine_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30)
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_embedded_batch_keeps_its_files_in_the_bucket(s3: S3Server, llama_server: LlamaServer, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    with gateway(tmp_path, s3.settings(bucket, prefix="team"), llama_server.base_url) as client:
        upload = client.files.create(file=("in.jsonl", io.BytesIO(chat_lines(5))), purpose="batch")
        assert s3.names(bucket) == [f"team/{upload.id}"]
        assert client.files.content(upload.id).content == chat_lines(5)
        created = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        terminal = ("completed", "failed", "cancelled", "expired")
        batch = wait_for(lambda: (b := client.batches.retrieve(created.id)).status in terminal and b, 300, 0.2)
        assert batch.status == "completed", batch
        assert batch.output_file_id is not None
        output = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
        assert sorted(o["custom_id"] for o in output) == [f"c{i}" for i in range(5)]
        assert all(o["response"]["status_code"] == 200 for o in output)
        assert all(o["response"]["body"]["choices"][0]["message"]["content"] is not None for o in output)
        assert sorted(s3.names(bucket)) == sorted([f"team/{upload.id}", f"team/{batch.output_file_id}"])
        assert s3.pending_uploads(bucket) == []
        # nothing but the download cache of the input on local disk
        assert [p.name for p in (tmp_path / "files").iterdir()] == [".s3-cache"]
        client.files.delete(upload.id)
        assert s3.names(bucket) == [f"team/{batch.output_file_id}"]


@pytest.mark.parametrize("fault", ["missing bucket", "endpoint down"])
def test_unusable_store_is_a_503_with_the_reason(
    s3: S3Server, llama_server: LlamaServer, tmp_path: Path, fault: str
) -> None:
    if fault == "missing bucket":
        storage, reason = s3.settings("no-such-bucket"), f"bucket 'no-such-bucket' at {s3.endpoint_url} does not exist"
    else:
        url = f"http://127.0.0.1:{free_port()}"
        storage = StorageSettings(backend="s3", endpoint_url=url, bucket="files", max_attempts=1)
        reason = f"S3 endpoint of bucket 'files' at {url} is unreachable"
    with gateway(tmp_path, storage, llama_server.base_url) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.files.create(file=("in.jsonl", io.BytesIO(chat_lines(1))), purpose="batch")
    assert caught.value.status_code == 503
    body: Any = caught.value.body
    assert body["code"] == "storage_unavailable"
    assert body["message"].startswith("file storage is unavailable: ")
    assert reason in body["message"]


@pytest.fixture
def cluster_steps(
    s3: S3Server, llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, Any]]:
    """A bucket named in `KUBEINFER_STORAGE__*`; step results collected in a dict instead of ConfigMaps."""
    bucket = s3.new_bucket()
    for name, value in {"BACKEND": "s3", "BUCKET": bucket, "ENDPOINT_URL": s3.endpoint_url}.items():
        monkeypatch.setenv(f"KUBEINFER_STORAGE__{name}", value)
    results: dict[str, Any] = {}
    monkeypatch.setattr("kubeinfer.steps.batch.write_result", results.__setitem__)
    monkeypatch.setattr("kubeinfer.cluster.endpoints.install_endpoints", lambda *_: [llama_server.base_url])
    return bucket, results


def test_cluster_steps_read_the_input_from_and_publish_results_to_the_bucket(
    s3: S3Server, cluster_steps: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    bucket, results = cluster_steps
    gateway_store = S3BlobStore.from_settings(Settings().storage, tmp_path / "gateway-cache")
    asyncio.run(gateway_store.put_stream("file-in", _chunks(chat_lines(6)), max_bytes=1 << 20))
    data = tmp_path / "data"
    common = {"batch_id": BATCH, "input_file_id": "file-in", "data_dir": data}

    batch_cli.validate(**common, endpoint="/v1/chat/completions", result="validate")
    assert results["validate"] | {"errors": None} == {"ok": True, "total": 6, "model": MODEL, "errors": None}
    for index in (0, 1):  # shard 2 of 3 never runs: its requests become error lines in the merge
        batch_cli.shard(
            **common,
            endpoint="/v1/chat/completions",
            model_install="smollm2",
            shards=3,
            index=index,
            progress="shard",
            concurrency=2,
        )
        assert results[f"shard-{index}"]["completed"] == 2
    (cached,) = (data / "files" / ".s3-cache").iterdir()  # downloaded once, read by every step
    assert cached.name.startswith("file-in~")
    batch_cli.merge(**common, result="merge", missing="worker_failed")

    merged = results["merge"]
    assert (merged["total"], merged["completed"], merged["failed"]) == (6, 4, 2)
    output_id, error_id = merged["output_file_id"], merged["error_file_id"]
    assert sorted(s3.names(bucket)) == sorted(f"kubeinfer/{key}" for key in ("file-in", output_id, error_id))
    assert not (data / "files" / output_id).exists()  # moved into the bucket, not copied
    output = [json.loads(x) for x in b"".join(gateway_store.iter_bytes(output_id)).splitlines()]
    assert [o["custom_id"] for o in output] == ["c0", "c1", "c2", "c3"]
    assert all(o["response"]["status_code"] == 200 for o in output)
    errors = [json.loads(x) for x in b"".join(gateway_store.iter_bytes(error_id)).splitlines()]
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("c4", "worker_failed"), ("c5", "worker_failed")]
    assert (data / "work" / BATCH).is_dir()  # the shard logs, the checkpoints, stay on the volume

    # the gateway's side: the files named in the BatchJob's status become files of its project, served from S3
    meta = MetadataStore(tmp_path / "gateway.db")
    body = {
        "metadata": {"name": BATCH, "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": {"inputFileId": "file-in", "project": "team-a"},
        "status": {"status": "completed", "outputFileId": output_id, "errorFileId": error_id},
    }
    ClusterBatchService("ns", meta, gateway_store, 2)._register(record_of(body))
    files = FileService(meta, gateway_store, max_upload_bytes=1 << 20)
    served = b"".join(files.content("team-a", output_id))
    assert files.get("team-a", output_id).sha256 == hashlib.sha256(served).hexdigest()
    assert [json.loads(x)["custom_id"] for x in served.splitlines()] == ["c0", "c1", "c2", "c3"]


def test_cluster_steps_report_a_missing_input_and_an_unusable_bucket(
    cluster_steps: tuple[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, results = cluster_steps
    data = tmp_path / "data"
    batch_cli.validate(
        batch_id=BATCH, input_file_id="file-gone", endpoint="/v1/chat/completions", data_dir=data, result="validate"
    )
    assert results["validate"]["ok"] is False
    assert results["validate"]["errors"][0]["code"] == "file_not_found"

    monkeypatch.setenv("KUBEINFER_STORAGE__BUCKET", "no-such-bucket")
    with pytest.raises(typer.Exit) as caught:
        batch_cli.merge(batch_id=BATCH, input_file_id="file-in", data_dir=data, result="merge", missing="")
    assert caught.value.exit_code == 1
    assert "error: S3 bucket 'no-such-bucket' at http://127.0.0.1:" in capsys.readouterr().err


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
