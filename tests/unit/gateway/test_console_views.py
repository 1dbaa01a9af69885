"""The console's view helpers without a browser: human timestamps, the new-batch form, file previews, the
matrix page's metrics, a ModelInstall's live fields; and, in process with no engine, that the console's
upload and batch forms refuse broken input with the very messages the API gives for the same input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kubeinfer.bench.report.html_report import charts, format_value
from kubeinfer.cluster.model_installs import summarize
from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.ui.batch_form import BatchForm, InvalidBatchForm, batch_body, parse_metadata
from kubeinfer.gateway.ui.file_view import PREVIEW_BYTES, PREVIEW_LINES, preview
from kubeinfer.gateway.ui.install_view import install_fields
from kubeinfer.gateway.ui.matrix_view import key_metrics, percentiles
from kubeinfer.gateway.ui.render import format_bytes
from kubeinfer.gateway.ui.timefmt import human_time, relative, to_epoch
from kubeinfer.resources.benchmark_matrix import CellResult, ProfileResult
from kubeinfer.settings import GatewaySettings, Settings

NOW = 1_780_000_000.0
LIMIT = 4096
API = {"Authorization": "Bearer sk-a"}


# --- human timestamps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (0, "just now"),
        (-1, "just now"),
        (-5, "5 seconds ago"),
        (-60, "1 minute ago"),
        (-119, "1 minute ago"),
        (-7200, "2 hours ago"),
        (-86400 * 3, "3 days ago"),
        (86400 - 1, "in 23 hours"),
        (600, "in 10 minutes"),
    ],
)
def test_relative_time_reads_like_githubs(offset: float, text: str) -> None:
    assert relative(NOW + offset, NOW) == text


def test_times_over_a_month_away_read_as_a_date() -> None:
    assert relative(NOW - 40 * 86400, NOW) == "on 2026-04-18"


def test_human_time_has_the_exact_utc_time_on_hover() -> None:
    html = str(human_time(NOW - 300, now=NOW))
    assert html == ('<time datetime="2026-05-28T20:21:40Z" title="2026-05-28 20:21:40 UTC">5 minutes ago</time>')


def test_iso_timestamps_of_reports_and_cluster_objects_are_read() -> None:
    assert to_epoch("2026-05-28T20:26:40Z") == NOW
    assert to_epoch("2026-05-28T20:26:40+00:00") == NOW
    assert to_epoch("2026-05-28T20:26:40") == NOW  # a naive report timestamp is UTC
    assert 'datetime="2026-05-28T20:26:40Z"' in str(human_time("2026-05-28T20:26:40Z", now=NOW))


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "<b>soon</b>"])
def test_unreadable_timestamps_are_shown_as_they_are_and_escaped(value: str) -> None:
    assert to_epoch(value) is None
    shown = str(human_time(value, now=NOW))
    assert "<time" not in shown
    assert "<b>" not in shown
    assert str(human_time(None)) == "–"


def test_sizes_read_in_binary_units() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 98_000_000, 3 * 1024**3)] == [
        "0 bytes",
        "1,023 bytes",
        "1.0 KiB",
        "93.5 MiB",
        "3.0 GiB",
    ]


# --- the new-batch form -------------------------------------------------------------------------------------


def test_metadata_lines_become_pairs() -> None:
    assert parse_metadata("team = search\n\nrun=nightly=2\n") == {"team": "search", "run": "nightly=2"}
    assert parse_metadata("  \n") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team search", "metadata: line 1 is not key=value: 'team search'"),
        ("a=1\n=2", "metadata: line 2 is not key=value: '=2'"),
        ("a=1\na=2", "metadata: line 2 repeats the key 'a'"),
    ],
)
def test_broken_metadata_names_its_line(text: str, message: str) -> None:
    with pytest.raises(InvalidBatchForm) as caught:
        parse_metadata(text)
    assert (caught.value.param, caught.value.message) == ("metadata", message)


def test_batch_body_refuses_what_the_api_refuses() -> None:
    with pytest.raises(InvalidBatchForm) as caught:
        batch_body(BatchForm(endpoint="/v1/images"), "file-1")
    with pytest.raises(InvalidBatchForm, match="not both"):
        batch_body(BatchForm(input_file_id="file-2"), "file-1")
    with pytest.raises(InvalidBatchForm, match="choose a JSONL file"):
        batch_body(BatchForm(), None)
    assert caught.value.param == "endpoint"
    assert caught.value.message.startswith("endpoint: Input should be '/v1/chat/completions'")
    assert batch_body(BatchForm(input_file_id="file-2"), None).input_file_id == "file-2"
    body = batch_body(BatchForm(metadata="team=search"), "file-1")
    assert (body.input_file_id, body.endpoint, body.metadata) == ("file-1", "/v1/chat/completions", {"team": "search"})


# --- file preview -------------------------------------------------------------------------------------------


def test_preview_shows_the_first_lines_only() -> None:
    lines = [json.dumps({"custom_id": f"r{i}"}) for i in range(100)]
    content = ("\n".join(lines) + "\n").encode()
    chunks = (content[i : i + 100] for i in range(0, len(content), 100))
    shown = preview(chunks, len(content))
    assert shown.lines == lines[:PREVIEW_LINES]
    assert shown.truncated


def test_preview_of_a_short_file_is_whole_and_bad_bytes_are_replaced() -> None:
    content = b'{"a": 1}\n\xff\xfe\n'
    shown = preview(iter([content]), len(content))
    assert shown.lines == ['{"a": 1}', "\ufffd\ufffd"]
    assert not shown.truncated


def test_preview_of_one_huge_line_stops_at_its_byte_limit() -> None:
    content = b"x" * (3 * PREVIEW_BYTES)
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(content), 1024):
            read.append(start)
            yield content[start : start + 1024]

    shown = preview(chunks(), len(content))
    assert len(shown.lines[0]) == PREVIEW_BYTES
    assert shown.truncated
    assert len(read) == PREVIEW_BYTES // 1024  # read no further than needed


# --- matrix metrics -----------------------------------------------------------------------------------------


def cell(quant: str, **interactive: float) -> CellResult:
    profile = ProfileResult(status="passed", metrics=interactive, rating="good")
    return CellResult(
        model="smollm2-135m",
        quantization=quant,
        model_size_b=0.135,
        model_size_gb=0.09,
        peak_memory_gb=0.4,
        status="passed",
        profiles={"interactive": profile},
    )


def test_key_metrics_leave_out_columns_no_cell_has() -> None:
    cells = [cell("Q4_1", tokens_per_second=41.5, ttft_seconds=0.12), cell("Q8_0", tokens_per_second=30.25)]
    view = key_metrics(cells)
    assert [c.key for c in view["columns"]] == ["tokens_per_second", "ttft_seconds", "peak_memory_gb"]
    assert view["rows"][0]["values"] == {
        "tokens_per_second": format_value("tokens_per_second", 41.5),
        "ttft_seconds": format_value("ttft_seconds", 0.12),
        "peak_memory_gb": format_value("peak_memory_gb", 0.4),
    }
    assert view["rows"][1]["values"]["ttft_seconds"] == "–"
    assert percentiles(cells)["rows"] == []


def test_percentile_metrics_are_shown_when_a_profile_reports_them() -> None:
    cells = [
        cell("Q4_1", tokens_per_second=41.5, ttft_p50_seconds=0.1, ttft_p95_seconds=0.25, itl_p99_seconds=0.031),
        cell("Q8_0", tokens_per_second=30.0),
    ]
    cells[0].cost_per_million_output_tokens, cells[0].currency = 0.42, "USD"
    view = key_metrics(cells)
    keys = [c.key for c in view["columns"]]
    assert "ttft_p95_seconds" in keys
    assert "cost_per_million_output_tokens" in keys
    assert view["rows"][0]["values"]["ttft_p95_seconds"] == format_value("ttft_p95_seconds", 0.25)
    assert view["rows"][0]["values"]["cost_per_million_output_tokens"] == "0.42 USD"
    assert view["rows"][1]["values"]["cost_per_million_output_tokens"] == "–"

    table = percentiles(cells)
    assert table["headers"] == ["itl p99", "ttft p50", "ttft p95"]
    assert table["rows"] == [
        {
            "cell": "smollm2-135m/Q4_1",
            "profile": "interactive",
            "values": [format_value("x_seconds", v) for v in (0.031, 0.1, 0.25)],
        }
    ]


def test_the_page_charts_are_the_html_reports() -> None:
    cells = [cell("Q4_1", tokens_per_second=41.5), cell("Q8_0", tokens_per_second=30.0)]
    svg = next(chart["svg"] for chart in charts(cells) if chart["title"].startswith("Tokens/s vs model size"))
    assert svg is not None
    assert "style=" not in str(svg)  # the console's CSP allows no inline style


# --- ModelInstall live fields -------------------------------------------------------------------------------


def install(status: dict[str, Any], serving: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1"}
    if serving is not None:
        spec["serving"] = serving
    return {"metadata": {"name": "smol"}, "spec": spec, "status": status}


def test_a_downloading_install_shows_its_progress() -> None:
    body = install({"phase": "Downloading", "progress": {"bytesDone": 12 * 2**20, "bytesTotal": 48 * 2**20}})
    view = install_fields(summarize(body))
    assert view["phase_class"] == "st-in_progress"
    assert view["fields"]["phase"] == "Downloading"
    assert view["fields"]["progress"] == "12.0 MiB of 48.0 MiB (25 %)"
    assert view["fields"]["serving"] == "not served"


def test_a_ready_install_shows_its_endpoints_and_size() -> None:
    status = {
        "phase": "Ready",
        "progress": {"bytesDone": 99, "bytesTotal": 99},
        "files": [{"quantization": "Q4_1", "sizeBytes": 95_000_000}],
        "serving": {"readyReplicas": 1, "endpoints": ["http://smol.team:8080"]},
    }
    view = install_fields(summarize(install(status, {"replicas": 1})))
    assert view["fields"] == {
        "phase": "Ready",
        "progress": "",
        "size": "90.6 MiB",
        "serving": "1/1 ready http://smol.team:8080",
        "message": "",
    }
    assert view["phase_class"] == "st-completed"


# --- the console's forms against the API, in process --------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    gateway = GatewaySettings(data_dir=tmp_path, api_keys="sk-a=projectA", max_upload_bytes=LIMIT, model="smollm2-135m")
    with TestClient(create_app(Settings(gateway=gateway), engine_url="http://127.0.0.1:9")) as c:
        yield c


def signed_in(client: TestClient) -> str:
    """Sign the client's cookie jar in and return the page's CSRF token."""
    login = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token is not None
    client.post("/ui/login", data={"api_key": "sk-a", "csrf_token": token[1]}, follow_redirects=False)
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/files").text)  # a new one per session
    assert fresh is not None
    return fresh[1]


def alert(html: str, param: str) -> str:
    found = re.search(rf'data-error="{param}">([^<]*)<', html)
    assert found is not None, html
    return found[1].replace("&#39;", "'").replace("&quot;", '"')


def files_kept(client: TestClient) -> int:
    return len(client.get("/v1/files", headers=API).json()["data"])


def test_an_oversized_upload_gets_the_apis_413_and_keeps_nothing(client: TestClient) -> None:
    token = signed_in(client)
    content = b"x" * (LIMIT + 1)
    api = client.post("/v1/files", headers=API, files={"file": ("big.jsonl", content)}, data={"purpose": "batch"})
    assert api.status_code == 413
    for path in ("/ui/files", "/ui/batches/new"):
        page = client.post(path, data={"csrf_token": token, "purpose": "batch"}, files={"file": ("big.jsonl", content)})
        assert page.status_code == 413
        assert alert(page.text, "file") == api.json()["error"]["message"]
    assert files_kept(client) == 0


def test_a_wrong_purpose_gets_the_apis_message(client: TestClient) -> None:
    token = signed_in(client)
    api = client.post("/v1/files", headers=API, files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fine-tune"})
    page = client.post(
        "/ui/files", data={"csrf_token": token, "purpose": "fine-tune"}, files={"file": ("a.jsonl", b"{}\n")}
    )
    assert (api.status_code, page.status_code) == (400, 400)
    assert alert(page.text, "purpose") == api.json()["error"]["message"]
    assert files_kept(client) == 0


def test_batch_metadata_over_the_limits_gets_the_apis_message(client: TestClient) -> None:
    token = signed_in(client)
    file_id = client.post("/v1/files", headers=API, files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"})
    body = {"input_file_id": file_id.json()["id"], "endpoint": "/v1/chat/completions", "metadata": {"k" * 65: "v"}}
    api = client.post("/v1/batches", headers=API, json=body)
    assert api.status_code == 400
    page = client.post(
        "/ui/batches/new",
        data={
            "csrf_token": token,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": f"{'k' * 65}=v",
        },
        files={"file": ("a.jsonl", b'{"custom_id": "1"}\n')},
    )
    assert page.status_code == 400
    assert alert(page.text, "metadata") == api.json()["error"]["message"]
    assert files_kept(client) == 1  # the form's own upload is deleted again; the API's stays
    assert client.get("/v1/batches", headers=API).json()["data"] == []


def test_an_unknown_input_file_gets_the_apis_message(client: TestClient) -> None:
    token = signed_in(client)
    body = {"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    api = client.post("/v1/batches", headers=API, json=body)
    page = client.post(
        "/ui/batches/new",
        data={"csrf_token": token, "input_file_id": "file-nope", "endpoint": "/v1/chat/completions"},
        files={"file": ("empty.jsonl", b"")},  # an empty file part: what the console reads for an empty file field
    )
    assert (api.status_code, page.status_code) == (404, 404)
    assert alert(page.text, "input_file_id") == api.json()["error"]["message"]


def test_an_upload_without_the_token_stores_nothing(client: TestClient) -> None:
    signed_in(client)
    for data in ({}, {"csrf_token": "x" * 43}):
        page = client.post("/ui/files", data={"purpose": "batch", **data}, files={"file": ("a.jsonl", b"{}\n")})
        assert page.status_code == 403
        assert "security token is missing or does not match" in page.text
    assert files_kept(client) == 0
