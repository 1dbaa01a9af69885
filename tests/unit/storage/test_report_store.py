"""Cluster reports beyond ConfigMap size: the operator's choice of where a report goes, and reading it back.

The store is real: a temporary data directory, and for S3 moto's server on 127.0.0.1 (testbed/s3.py; the
bucket is the simulated part, nothing reaches AWS). The ConfigMap write is a callable collecting the text
here; the API server side of it is covered by tests/cluster/test_operator.py. The limit is lowered so no
test needs a 1 MiB report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.cluster.matrices import ReportUnavailable, load_report_document, read_stored_document
from kubeinfer.operator.benchmark_matrix import place_report
from kubeinfer.settings import Settings
from kubeinfer.storage.reports import ReportNotInStore, ReportStoreError, put_report, read_report_bytes, report_key
from testbed.s3 import S3Server, s3_server

WHERE = "BenchmarkMatrix big in namespace ns"


def big_report(cells: int = 200) -> dict[str, Any]:
    """A report whose cells carry long server-log paths and reasons, as a large matrix's do."""
    results = [
        {
            "model": f"model-{index}",
            "quantization": "Q4_K_M",
            "model_size_b": 0.135,
            "status": "passed",
            "reason": "x" * 200,
            "cost_per_million_output_tokens": 0.25 + index,
        }
        for index in range(cells)
    ]
    return {"metadata": {"name": "big"}, "results": results, "recommendations": {}, "best": "model-0/Q4_K_M"}


def settings_for(tmp_path: Path, limit: int = 1_000_000, **storage: object) -> Settings:
    return Settings.model_validate(
        {
            "cache_dir": tmp_path / "cache",
            "gateway": {"data_dir": tmp_path / "data"},
            "operator": {"report_config_map_max_bytes": limit},
            "storage": storage,
        }
    )


def place(report: dict[str, Any], settings: Settings) -> tuple[str, list[str]]:
    written: list[str] = []
    pointer = place_report(report, "ns", "big", "big-report", settings, written.append)
    return pointer, written


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def test_the_limit_stays_below_what_a_config_map_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().operator.report_config_map_max_bytes < 1024 * 1024
    monkeypatch.setenv("KUBEINFER_OPERATOR__REPORT_CONFIG_MAP_MAX_BYTES", "2000")
    assert Settings().operator.report_config_map_max_bytes == 2000
    monkeypatch.setenv("KUBEINFER_OPERATOR__REPORT_CONFIG_MAP_MAX_BYTES", "2000000")
    with pytest.raises(ValueError, match="report_config_map_max_bytes"):
        Settings()


@pytest.mark.parametrize("broken", ["0", "-5", "soon"])
def test_the_report_retry_wait_is_a_positive_number_of_seconds(monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    assert Settings().operator.report_retry_seconds == 60
    monkeypatch.setenv("KUBEINFER_OPERATOR__REPORT_RETRY_SECONDS", "5")
    assert Settings().operator.report_retry_seconds == 5
    monkeypatch.setenv("KUBEINFER_OPERATOR__REPORT_RETRY_SECONDS", broken)
    with pytest.raises(ValueError, match="report_retry_seconds"):
        Settings()


def test_a_report_that_fits_goes_to_its_config_map(tmp_path: Path) -> None:
    report = big_report(3)
    pointer, written = place(report, settings_for(tmp_path))
    assert pointer == "configmap/big-report"
    assert [json.loads(text) for text in written] == [report]
    assert not (tmp_path / "data").exists()


def test_a_large_report_goes_to_the_data_directory_and_reads_back(tmp_path: Path) -> None:
    report = big_report()
    settings = settings_for(tmp_path, limit=len(json.dumps(report).encode()) - 1)
    pointer, written = place(report, settings)
    assert written == []
    assert pointer == "store:reports/ns/big/report.json"
    assert json.loads((tmp_path / "data" / "reports" / "ns" / "big" / "report.json").read_text()) == report
    assert read_stored_document(pointer, WHERE, settings) == report
    assert load_report_document(None, "ns", WHERE, pointer, settings) == report
    assert [p.name for p in (tmp_path / "data" / "reports" / "ns" / "big").iterdir()] == ["report.json"]


def test_a_large_report_goes_to_the_bucket_and_reads_back(tmp_path: Path, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    settings = settings_for(tmp_path, limit=1000, **s3.settings(bucket, prefix="kb").model_dump())
    report = big_report()
    pointer, written = place(report, settings)
    assert written == []
    assert pointer == f"s3://{bucket}/kb/reports/ns/big/report.json"
    assert s3.names(bucket) == ["kb/reports/ns/big/report.json"]
    assert read_stored_document(pointer, WHERE, settings) == report


def test_a_store_pointer_to_a_missing_file_names_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with pytest.raises(ReportUnavailable) as raised:
        read_stored_document("store:reports/ns/gone/report.json", WHERE, settings)
    message = str(raised.value)
    assert message.startswith(f"{WHERE} is Completed but its report cannot be read: store:reports/ns/gone/report.json")
    assert str(tmp_path / "data" / "reports" / "ns" / "gone" / "report.json") in message


def test_a_missing_object_in_the_bucket_is_named(tmp_path: Path, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    storage = s3.settings(bucket)
    with pytest.raises(ReportNotInStore, match=f"s3://{bucket}/kubeinfer/reports/ns/gone/report.json: no such object"):
        read_report_bytes(f"s3://{bucket}/kubeinfer/reports/ns/gone/report.json", storage, tmp_path)


def test_a_missing_bucket_is_named_on_write_and_on_read(tmp_path: Path, s3: S3Server) -> None:
    storage = s3.settings("no-such-bucket")
    with pytest.raises(ReportStoreError, match="no-such-bucket.*does not exist"):
        put_report(storage, tmp_path, report_key("ns", "big"), b"{}")
    with pytest.raises(ReportStoreError, match="cannot read the report s3://no-such-bucket/k.*does not exist"):
        read_report_bytes("s3://no-such-bucket/k", storage, tmp_path)


def test_an_unreachable_bucket_endpoint_is_an_unreadable_store(tmp_path: Path, s3: S3Server) -> None:
    storage = s3.settings("b", endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout_seconds=1)
    with pytest.raises(ReportStoreError, match="unreachable"):
        read_report_bytes("s3://b/kubeinfer/reports/ns/big/report.json", storage, tmp_path)


def test_an_s3_pointer_without_an_s3_store_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ReportUnavailable, match="no S3 store is configured here: set KUBEINFER_STORAGE__BACKEND=s3"):
        read_stored_document("s3://bucket/kubeinfer/reports/ns/big/report.json", WHERE, settings_for(tmp_path))


def test_an_unwritable_data_directory_is_reported(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, limit=10)
    (tmp_path / "data").write_text("a file where the data directory should be")
    with pytest.raises(ReportStoreError, match=f"cannot write the report to the data directory {tmp_path / 'data'}"):
        place(big_report(), settings)


def test_an_unreadable_stored_report_is_reported(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (tmp_path / "data" / "reports" / "ns" / "big" / "report.json").mkdir(parents=True)
    with pytest.raises(ReportUnavailable, match="cannot read .*report.json"):
        read_stored_document("store:reports/ns/big/report.json", WHERE, settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "is not JSON"), (b"[1, 2]", "is not a kubeinfer report (no results list)")],
)
def test_a_broken_stored_report_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    settings = settings_for(tmp_path)
    path = tmp_path / "data" / "reports" / "ns" / "big" / "report.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ReportUnavailable, match=re.escape(f"store:reports/ns/big/report.json {message}")):
        read_stored_document("store:reports/ns/big/report.json", WHERE, settings)


@pytest.mark.parametrize(
    "pointer", ["store:../../etc/passwd", "store:/etc/passwd", "store:", "s3://", "s3://bucket", "ftp://x/y"]
)
def test_pointers_outside_the_store_are_refused(tmp_path: Path, pointer: str) -> None:
    with pytest.raises(ReportStoreError):
        read_report_bytes(pointer, settings_for(tmp_path).storage, tmp_path)
