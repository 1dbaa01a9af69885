"""A BatchJob on the kind cluster with its files in an S3-compatible bucket (docs/storage.md).

The bucket is simulated: moto's `ThreadedMotoServer`, an S3-compatible server listening on this machine's
address on the kind nodes' container network, which the gateway and operator here and the batch pods in the
cluster all reach. The `openai` client uploads to a cluster-mode gateway with `KUBEINFER_STORAGE__BACKEND=s3`;
the operator (under its RBAC) hands its storage settings and the credentials Secret's `AWS_*` keys to the
validate, worker and merge pods, which run as containers on the kind node; the workers send every request to a
llama-server replica of a ModelInstall, also a container. Dummy credentials only: no AWS host is ever contacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.batch_env import NAMESPACE, Env, assert_exactly_once, batch_env, lines_of, requests_file, wait_final
from testbed.kind import KindCluster
from testbed.namespace_env import apply
from testbed.s3 import DUMMY_AWS_ENV, S3Server, s3_server

pytestmark = pytest.mark.timeout(1500)

PREFIX = "cluster-files"
SECRET = "kubeinfer-s3"
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="module")
def s3(kube_cluster: KindCluster) -> Iterator[S3Server]:
    """Moto on this machine's address on the nodes' network, where pods reach it."""
    with s3_server(kube_cluster.host_address) as server:
        yield server


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture(scope="module")
def env(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    batch_data_dir: Path,
    s3: S3Server,
    bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    storage = {
        "KUBEINFER_STORAGE__BACKEND": "s3",
        "KUBEINFER_STORAGE__ENDPOINT_URL": s3.endpoint_url,
        "KUBEINFER_STORAGE__BUCKET": bucket,
        "KUBEINFER_STORAGE__PREFIX": PREFIX,
        "KUBEINFER_STORAGE__REGION": "us-east-1",
    }
    with batch_env(
        kube_cluster,
        cluster_models_root,
        tmp_path_factory.mktemp("batch-cluster-s3"),
        batch_data_dir,
        replicas=1,
        operator_env=storage | {"KUBEINFER_STORAGE__CREDENTIALS_SECRET": SECRET},
        gateway_env=storage | DUMMY_AWS_ENV,
    ) as value:
        # as the chart's credentialsSecret: the operator names it, the batch pods get its keys as env
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "stringData": {key: DUMMY_AWS_ENV[key] for key in CREDENTIALS},
        }
        apply(kube_cluster, [secret])
        yield value


def files_on_volume(env: Env) -> list[Path]:
    return [p.relative_to(env.data_dir) for p in env.data_dir.rglob("*") if p.is_file()]


def test_a_batch_reads_its_input_from_and_writes_its_output_to_the_bucket(
    env: Env, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    count = 50
    path = requests_file(tmp_path / "in.jsonl", count, prefix="s3")
    expected = [f"s3-{i}" for i in range(count)]
    client = env.client()
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert s3.names(bucket) == [f"{PREFIX}/{uploaded.id}"]
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    done = wait_final(env, batch.id, timeout=900)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (count, count)
    assert done.output_file_id is not None
    assert done.error_file_id is None
    output = lines_of(env, done.output_file_id)
    assert len(output) == count
    assert_exactly_once(output, [], expected)
    assert all(line["response"]["status_code"] == 200 for line in output)

    assert sorted(s3.names(bucket)) == sorted(f"{PREFIX}/{key}" for key in (uploaded.id, done.output_file_id))
    on_volume = files_on_volume(env)
    assert [p for p in on_volume if done.output_file_id in p.name] == [], on_volume  # only in the bucket
    inputs = [p for p in on_volume if uploaded.id in p.name]
    assert inputs, on_volume  # the download cache the validate and worker pods read
    assert all(p.parent == Path("files/.s3-cache") for p in inputs), inputs
    assert sorted(p.name for p in (env.data_dir / "work" / batch.id).glob("shard-*.output.jsonl")) == [
        "shard-0.output.jsonl",
        "shard-1.output.jsonl",
    ]  # the checkpoints stay on the volume


def test_an_input_object_removed_from_the_bucket_fails_the_batch_naming_the_file(
    env: Env, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    client = env.client()
    with requests_file(tmp_path / "in.jsonl", 3, prefix="gone").open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    s3.client().delete_object(Bucket=bucket, Key=f"{PREFIX}/{uploaded.id}")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    done = wait_final(env, batch.id, timeout=300)
    assert done.status == "failed", done
    assert done.errors is not None
    assert done.errors.data
    [error] = done.errors.data
    assert error.code == "file_not_found"
    assert uploaded.id in (error.message or "")
    assert done.output_file_id is None
