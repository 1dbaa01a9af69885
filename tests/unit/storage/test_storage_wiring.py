"""The S3 storage settings travel as the chart and the operator say: chart values -> gateway and operator env ->
`Settings.storage` -> the batch pods' env -> `Settings.storage` again, in the pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.helm.chart import CHART, HelmError, template
from kubeinfer.operator.builders.batch_job import build_merge_job, build_validate_job, build_worker_job
from kubeinfer.settings import OperatorSettings, Settings, StorageSettings

S3_VALUES = CHART / "ci" / "s3-values.yaml"
BODY = {
    "apiVersion": "kubeinfer.dev/v1alpha1",
    "kind": "BatchJob",
    "metadata": {"name": "batch-abc", "namespace": "ns", "uid": "u-1"},
    "spec": {"inputFileId": "file-in", "endpoint": "/v1/chat/completions", "workers": 2},
}


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _apply(env: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    for entry in env:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }


def test_s3_values_reach_gateway_operator_and_batch_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = template(S3_VALUES)
    expected = {
        "backend": "s3",
        "bucket": "kubeinfer-files",
        "prefix": "ci",
        "endpoint_url": "http://minio.storage.svc:9000",
        "region": "us-east-1",
    }
    with monkeypatch.context() as gateway_env:
        secrets = _apply(_container(docs, "kubeinfer-gateway")["env"], gateway_env)
        assert Settings().storage.model_dump(include=set(expected)) == expected
        assert {k: (v["name"], v["key"], v["optional"]) for k, v in secrets.items()} == {
            "AWS_ACCESS_KEY_ID": ("kubeinfer-s3", "AWS_ACCESS_KEY_ID", False),
            "AWS_SECRET_ACCESS_KEY": ("kubeinfer-s3", "AWS_SECRET_ACCESS_KEY", False),
            "AWS_SESSION_TOKEN": ("kubeinfer-s3", "AWS_SESSION_TOKEN", True),
        }
    with monkeypatch.context() as operator_env:
        # Its own keys: it writes matrix reports too large for a ConfigMap to the bucket.
        operator_secrets = _apply(_container(docs, "kubeinfer-operator")["env"], operator_env)
        assert operator_secrets == secrets
        assert Settings().storage.model_dump(include=set(expected)) == expected
        operator = Settings().operator
    assert operator.storage.credentials_secret == "kubeinfer-s3"
    for job in (
        build_validate_job(BODY, operator),
        build_worker_job(BODY, "smollm2", operator),
        build_merge_job(BODY, "", operator),
    ):
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        with monkeypatch.context() as pod_env:
            secrets = _apply(env, pod_env)
            assert Settings().storage.model_dump(include=set(expected)) == expected
            assert Settings().storage.credentials_secret is None
        assert {v["name"] for v in secrets.values()} == {"kubeinfer-s3"}
        assert set(secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def test_local_storage_adds_no_env() -> None:
    docs = template(CHART / "ci" / "cpu-values.yaml")
    for name in ("kubeinfer-gateway", "kubeinfer-operator"):
        names = {e["name"] for e in _container(docs, name)["env"]}
        assert not {n for n in names if n.startswith(("KUBEINFER_STORAGE__", "AWS_"))}, name
    job = build_merge_job(BODY, "", OperatorSettings())
    assert not [e for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if "STORAGE" in e["name"]]


def test_pods_without_a_credentials_secret_use_their_own_identity() -> None:
    settings = OperatorSettings(storage=StorageSettings(backend="s3", bucket="b"))
    env = build_validate_job(BODY, settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [e for e in env if e["name"].startswith("AWS_")]
    assert {"name": "KUBEINFER_STORAGE__BUCKET", "value": "b"} in env


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"backend": "s3"}, "storage.s3.bucket is required when storage.backend is s3"),
        ({"backend": "gcs"}, "at '/storage/backend': value must be one of 'local', 's3'"),  # values.schema.json
    ],
)
def test_chart_refuses_broken_storage_values(tmp_path: Path, storage: dict[str, Any], message: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"storage": storage}))
    with pytest.raises(HelmError, match=message):
        template(CHART / "ci" / "cpu-values.yaml", values)
