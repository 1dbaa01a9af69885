"""The console's uploads, new batches, Files page, matrix metrics, live updates and timestamps, in headless
Chromium (Debian's, driven by Playwright) against a real gateway process on the session's llama-server.

Batches created from the browser really run. Every refusal is compared with what the API answers for the
same input (`/v1/files`, `/v1/batches`, `DELETE /v1/files/{id}`), and each broken input is shown to leave
no file and no batch behind. One input is written by the test: a benchmark report whose interactive profile
holds latency percentiles (`ttft_p95_seconds`...), the shape the load profiles write, so the percentile
table is checked whatever the bench run of this machine measures.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect

from kubeinfer.bench.report.html_report import charts, format_value
from kubeinfer.bench.report.json_report import as_report_data, render_json
from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.gateway.ui.timefmt import absolute
from kubeinfer.resources.benchmark_matrix import CellResult, ProfileResult
from testbed.browser import signed_in_page
from testbed.gateway_process import GatewayProcess
from testbed.wait import wait_for

expect.set_options(timeout=30_000)

MODEL = "smollm2-135m"
KEY_A, KEY_B = "sk-files-a", "sk-files-b"
#: The gateway's upload limit here: small, so over-limit files stay small too.
MAX_UPLOAD = 64 * 1024
#: The multipart framing the gateway allows on top of MAX_UPLOAD before refusing a body unread.
ENVELOPE = 64 * 1024
#: Upper bound for a batch to finish; never a measured duration.
BATCH_WAIT_MS = 600_000
PERCENTILE_MATRIX = "load-percentiles"


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    (root / PERCENTILE_MATRIX).mkdir()
    (root / PERCENTILE_MATRIX / "report.json").write_text(render_json(as_report_data({"results": percentile_cells()})))
    return root


@pytest.fixture(scope="module")
def gateway(
    llama_server: LlamaServer, reports_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("console-files")
    env = {
        "KUBEINFER_GATEWAY__API_KEYS": f"{KEY_A}=projectA,{KEY_B}=projectB",
        "KUBEINFER_GATEWAY__MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "KUBEINFER_GATEWAY__REPORTS_DIR": str(reports_dir),
    }
    process = GatewayProcess(work / "data", llama_server.base_url, work / "gateway.log", env).start()
    yield process
    process.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)


@pytest.fixture
def api(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """The raw API, for its error bodies."""
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60) as c:
        yield c


@pytest.fixture
def page_a(browser: Browser, gateway: GatewayProcess) -> Iterator[Page]:
    page = signed_in_page(browser, gateway.url, KEY_A)
    yield page
    page.context.close()


# --- helpers ------------------------------------------------------------------------------------------------


def request_lines(count: int, prefix: str, max_tokens: int = 8, ignore_eos: bool = False) -> bytes:
    lines = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Say the number {i}."}],
                "max_tokens": max_tokens,
                "temperature": 0,
                **({"ignore_eos": True} if ignore_eos else {}),
            },
        }
        for i in range(count)
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def wait_batch(client: openai.OpenAI, batch_id: str) -> openai.types.Batch:
    terminal = {"completed", "failed", "expired", "cancelled"}
    wait_for(lambda: client.batches.retrieve(batch_id).status in terminal, BATCH_WAIT_MS / 1000, 0.2)
    return client.batches.retrieve(batch_id)


def stored(client: openai.OpenAI) -> tuple[set[str], set[str]]:
    """Ids of project A's files and batches."""
    return {f.id for f in client.files.list()}, {b.id for b in client.batches.list(limit=100)}


def api_upload_error(api: httpx.Client, content: bytes) -> str:
    answer = api.post("/v1/files", files={"file": ("big.jsonl", content)}, data={"purpose": "batch"})
    assert answer.status_code == 413, answer.text
    return str(answer.json()["error"]["message"])


def api_batch_error(api: httpx.Client, file_id: str, metadata: dict[str, str]) -> str:
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": metadata}
    answer = api.post("/v1/batches", json=body)
    assert answer.status_code == 400, answer.text
    return str(answer.json()["error"]["message"])


def submit_new_batch(page: Page, file: Path | None = None, metadata: str = "", uploaded: str = "") -> int:
    """Fill the new-batch form and send it; the answer's HTTP status."""
    page.goto("/ui/batches/new")
    form = page.get_by_test_id("batch-form")
    if file is not None:
        form.get_by_label("JSONL file to upload").set_input_files(file)
    if metadata:
        form.get_by_label("Metadata").fill(metadata)
    if uploaded:
        form.get_by_label("An uploaded file").select_option(uploaded)
    with page.expect_response("**/ui/batches/new") as answer:
        form.get_by_role("button", name="Create batch").click()
    return answer.value.status


def percentile_cells() -> list[CellResult]:
    """Two cells whose interactive profile has latency percentiles, as the load profiles report them."""
    metrics = {
        "Q4_1": {"tokens_per_second": 52.5, "ttft_seconds": 0.11, "ttft_p50_seconds": 0.1, "ttft_p95_seconds": 0.21},
        "Q8_0": {"tokens_per_second": 40.25, "ttft_seconds": 0.16, "ttft_p95_seconds": 0.34, "itl_p99_seconds": 0.05},
    }
    return [
        CellResult(
            model=MODEL,
            quantization=quant,
            model_size_b=0.135,
            model_size_gb=size,
            peak_memory_gb=memory,
            status="passed",
            profiles={"interactive": ProfileResult(status="passed", metrics=values, rating="good")},
        )
        for (quant, values), size, memory in zip(metrics.items(), (0.09, 0.14), (0.35, 0.41), strict=True)
    ]


# --- new batch from an uploaded file ------------------------------------------------------------------------


def test_new_batch_from_an_uploaded_jsonl_runs_and_its_output_downloads(
    page_a: Page, client: openai.OpenAI, tmp_path: Path
) -> None:
    content = request_lines(6, "console")
    requests_file = write(tmp_path, "requests.jsonl", content)

    page_a.goto("/ui/batches")
    page_a.get_by_test_id("new-batch").click()
    form = page_a.get_by_test_id("batch-form")
    form.get_by_label("JSONL file to upload").set_input_files(requests_file)
    form.get_by_label("Metadata").fill("team=console\nrun = 1")
    form.get_by_role("button", name="Create batch").click()

    expect(page_a).to_have_url(re.compile(r"/ui/batches/batch-[0-9a-f]+$"))
    batch_id = page_a.url.rsplit("/", 1)[1]
    expect(page_a.locator('[data-field="status"]')).to_have_text("completed", timeout=BATCH_WAIT_MS)
    batch = client.batches.retrieve(batch_id)
    assert batch.metadata == {"team": "console", "run": "1"}
    assert batch.endpoint == "/v1/chat/completions"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (6, 0)
    input_file = client.files.retrieve(batch.input_file_id)
    assert (input_file.filename, input_file.purpose) == ("requests.jsonl", "batch")
    assert client.files.content(batch.input_file_id).content == content

    with page_a.expect_download() as download_info:
        page_a.get_by_test_id("download-output").click()
    assert batch.output_file_id is not None
    assert Path(download_info.value.path()).read_bytes() == client.files.content(batch.output_file_id).content


def test_new_batch_from_a_file_uploaded_before(page_a: Page, client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("earlier.jsonl", io.BytesIO(request_lines(2, "earlier"))), purpose="batch")
    page_a.goto(f"/ui/files/{uploaded.id}")
    page_a.get_by_role("link", name="Create a batch from it").click()
    expect(page_a.get_by_label("An uploaded file")).to_have_value(uploaded.id)
    page_a.get_by_role("button", name="Create batch").click()
    expect(page_a).to_have_url(re.compile(r"/ui/batches/batch-[0-9a-f]+$"))
    batch = wait_batch(client, page_a.url.rsplit("/", 1)[1])
    assert batch.input_file_id == uploaded.id
    assert batch.status == "completed"


def test_broken_jsonl_fails_the_batch_with_the_apis_line_errors(
    page_a: Page, client: openai.OpenAI, tmp_path: Path
) -> None:
    good = request_lines(1, "fine")
    broken = write(tmp_path, "broken.jsonl", good + b"{this is not json\n" + b'{"method": "POST"}\n')
    assert submit_new_batch(page_a, broken) == 303
    expect(page_a).to_have_url(re.compile(r"/ui/batches/batch-[0-9a-f]+$"))
    expect(page_a.locator('[data-field="status"]')).to_have_text("failed", timeout=BATCH_WAIT_MS)

    batch = client.batches.retrieve(page_a.url.rsplit("/", 1)[1])
    assert batch.errors is not None
    assert batch.errors.data
    rows = page_a.locator("table", has=page_a.get_by_role("columnheader", name="code")).locator("tbody tr")
    expect(rows).to_have_count(len(batch.errors.data))
    for row, error in zip(rows.all(), batch.errors.data, strict=True):
        assert row.locator("td").all_inner_texts() == [str(error.line or "–"), error.code or "–", error.message or ""]
    assert {error.line for error in batch.errors.data} >= {2, 3}


def test_new_batch_form_refuses_broken_input_and_keeps_nothing(
    page_a: Page, client: openai.OpenAI, api: httpx.Client, tmp_path: Path
) -> None:
    requests_file = write(tmp_path, "requests.jsonl", request_lines(1, "refused"))
    earlier = client.files.create(file=("earlier.jsonl", io.BytesIO(request_lines(1, "x"))), purpose="batch")
    over_store = b"x" * (MAX_UPLOAD + 1)  # the store refuses it while it streams
    over_body = b"x" * (MAX_UPLOAD + ENVELOPE + 1024)  # the gateway refuses the body unread
    cases: list[tuple[dict[str, Any], str, int, str]] = [
        ({}, "file", 400, "choose a JSONL file to upload (an empty file has no requests)"),
        ({"file": requests_file, "metadata": "oops"}, "metadata", 400, "metadata: line 1 is not key=value: 'oops'"),
        (
            {"file": requests_file, "metadata": f"{'k' * 65}=v"},
            "metadata",
            400,
            api_batch_error(api, earlier.id, {"k" * 65: "v"}),
        ),
        (
            {"file": requests_file, "uploaded": earlier.id},
            "file",
            400,
            "choose a file to upload or an uploaded file, not both",
        ),
        ({"file": write(tmp_path, "big.jsonl", over_store)}, "file", 413, api_upload_error(api, over_store)),
    ]
    before = stored(client)
    for fields, where, status, message in cases:
        assert submit_new_batch(page_a, **fields) == status, fields
        expect(page_a.locator(f'[data-error="{where}"]')).to_have_text(message)
    assert stored(client) == before

    # a body the gateway refuses before reading it: its JSON 413, shown on the form by the page's script
    assert submit_new_batch(page_a, write(tmp_path, "huge.jsonl", over_body)) == 413
    expect(page_a.locator('[data-error="upload"]')).to_have_text(f"file: {api_upload_error(api, over_body)}")
    assert stored(client) == before


# --- the Files page -----------------------------------------------------------------------------------------


def test_files_page_uploads_inspects_downloads_and_deletes(page_a: Page, client: openai.OpenAI, tmp_path: Path) -> None:
    content = b"".join(json.dumps({"row": i, "text": f"line {i}"}).encode() + b"\n" for i in range(40))
    notes = write(tmp_path, "notes.jsonl", content)

    page_a.goto("/ui/files")
    form = page_a.get_by_test_id("upload-form")
    form.get_by_label("Purpose").select_option("user_data")
    form.get_by_label("File").set_input_files(notes)
    form.get_by_role("button", name="Upload").click()
    expect(page_a).to_have_url(re.compile(r"/ui/files/file-[0-9a-f]+$"))
    file_id = page_a.url.rsplit("/", 1)[1]

    record = client.files.retrieve(file_id)
    assert (record.filename, record.purpose, record.bytes) == ("notes.jsonl", "user_data", len(content))
    details = page_a.get_by_test_id("file-details")
    expect(details).to_contain_text("notes.jsonl")
    expect(details).to_contain_text(f"{len(content):,} bytes")
    shown = page_a.get_by_test_id("file-preview").inner_text().splitlines()
    assert shown == content.decode().splitlines()[:20]
    expect(page_a.get_by_text("Only the beginning is shown")).to_be_visible()
    with page_a.expect_download() as download_info:
        page_a.get_by_test_id("file-download").click()
    assert Path(download_info.value.path()).read_bytes() == content

    page_a.goto("/ui/files")
    row = page_a.locator(f'tr[data-file="{file_id}"]')
    expect(row).to_contain_text("notes.jsonl")
    expect(row).to_contain_text("user_data")
    row.get_by_role("link", name=file_id).click()
    page_a.get_by_role("button", name="Delete file").click()
    expect(page_a).to_have_url(re.compile(rf"/ui/files\?deleted={file_id}$"))
    expect(page_a.get_by_test_id("file-deleted")).to_contain_text(file_id)
    expect(page_a.locator(f'tr[data-file="{file_id}"]')).to_have_count(0)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)


def test_upload_form_refusals_are_the_apis(
    page_a: Page, client: openai.OpenAI, api: httpx.Client, tmp_path: Path
) -> None:
    before = stored(client)
    page_a.goto("/ui/files")
    form = page_a.get_by_test_id("upload-form")
    with page_a.expect_response("**/ui/files") as answer:
        form.get_by_role("button", name="Upload").click()
    assert answer.value.status == 400
    expect(page_a.locator('[data-error="file"]')).to_have_text(
        "choose a file to upload (an empty file has nothing to send)"
    )

    over_store = b"x" * (MAX_UPLOAD + 1)
    page_a.get_by_test_id("upload-form").get_by_label("File").set_input_files(write(tmp_path, "big", over_store))
    with page_a.expect_response("**/ui/files") as answer:
        page_a.get_by_test_id("upload-form").get_by_role("button", name="Upload").click()
    assert answer.value.status == 413
    expect(page_a.locator('[data-error="file"]')).to_have_text(api_upload_error(api, over_store))

    # a purpose the page does not offer, as a tampered form sends it
    page_a.get_by_test_id("upload-form").get_by_label("File").set_input_files(write(tmp_path, "a.jsonl", b"{}\n"))
    page_a.evaluate("document.querySelector('select[name=purpose]').options[0].value = 'fine-tune'")
    with page_a.expect_response("**/ui/files") as answer:
        page_a.get_by_test_id("upload-form").get_by_role("button", name="Upload").click()
    assert answer.value.status == 400
    expected = api.post("/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fine-tune"})
    expect(page_a.locator('[data-error="purpose"]')).to_have_text(expected.json()["error"]["message"])
    assert stored(client) == before


def test_deleting_the_input_of_a_running_batch_shows_the_apis_409(
    page_a: Page, client: openai.OpenAI, api: httpx.Client
) -> None:
    # many short requests, each generating its whole max_tokens: the batch runs far longer than the page takes
    # to be refused, and the cancel at the end waits only for the few in flight
    busy = request_lines(240, "busy", max_tokens=24, ignore_eos=True)  # 55 KB, under MAX_UPLOAD
    uploaded = client.files.create(file=("long.jsonl", io.BytesIO(busy)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id).status == "in_progress", BATCH_WAIT_MS / 1000, 0.2)

    page_a.goto(f"/ui/files/{uploaded.id}")
    expect(page_a.get_by_test_id("file-details")).to_contain_text(batch.id)  # "in use by"
    with page_a.expect_response(f"**/ui/files/{uploaded.id}/delete") as answer:
        page_a.get_by_role("button", name="Delete file").click()
    assert answer.value.status == 409
    refusal = api.delete(f"/v1/files/{uploaded.id}")
    assert refusal.status_code == 409
    assert refusal.json()["error"]["code"] == "file_in_use"
    expect(page_a.get_by_test_id("file-error")).to_have_text(refusal.json()["error"]["message"])
    assert client.files.retrieve(uploaded.id).id == uploaded.id

    client.batches.cancel(batch.id)
    wait_batch(client, batch.id)


# --- projects and forged posts ------------------------------------------------------------------------------


def test_another_projects_file_is_404_and_stays(
    browser: Browser, gateway: GatewayProcess, client: openai.OpenAI
) -> None:
    uploaded = client.files.create(file=("mine.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    page_b = signed_in_page(browser, gateway.url, KEY_B)
    page_b.goto("/ui/files")
    expect(page_b.get_by_text(uploaded.id)).to_have_count(0)
    response = page_b.goto(f"/ui/files/{uploaded.id}")
    assert response is not None
    assert response.status == 404
    expect(page_b.get_by_role("alert")).to_have_text(f"No such File object: {uploaded.id}")
    token = page_b.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    refused = page_b.request.post(f"/ui/files/{uploaded.id}/delete", form={"csrf_token": token})
    assert refused.status == 404
    response = page_b.goto(f"/ui/batches/new?file={uploaded.id}")
    assert response is not None
    expect(page_b.get_by_label("An uploaded file").locator("option")).to_have_count(1)  # only "none"
    page_b.context.close()
    assert client.files.retrieve(uploaded.id).id == uploaded.id


def test_forged_uploads_are_refused_and_store_nothing(
    page_a: Page, client: openai.OpenAI, gateway: GatewayProcess, attacker_site: tuple[str, list[bytes]]
) -> None:
    before = stored(client)
    site, pages = attacker_site
    target = f"{gateway.url}/ui/files"
    pages.append(
        f'<form id="f" method="post" action="{target}" enctype="multipart/form-data">'
        '<input name="csrf_token" value="guessed"><input type="file" name="file"></form>'
        "<script>const t = new DataTransfer(); t.items.add(new File(['{}\\n'], 'evil.jsonl'));"
        'const f = document.getElementById("f"); f.elements.namedItem("file").files = t.files;'
        "f.submit()</script>".encode()
    )
    with page_a.expect_response(target) as answer:
        page_a.goto(site)
    assert answer.value.status == 403
    expect(page_a.get_by_role("alert")).to_contain_text("Refused: the form was posted from another site")

    upload = FilePayload(name="x.jsonl", mimeType="application/jsonl", buffer=b"{}\n")
    for path in ("/ui/files", "/ui/batches/new"):
        for token in ({}, {"csrf_token": "x" * 43}):
            response = page_a.request.post(path, multipart={**token, "purpose": "batch", "file": upload})
            assert response.status == 403
            assert "security token is missing or does not match" in response.text()
    assert stored(client) == before


# --- timestamps ---------------------------------------------------------------------------------------------


def test_timestamps_read_relative_with_the_exact_time_on_hover(page_a: Page, client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("when.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    page_a.goto("/ui/files")
    shown = page_a.locator(f'tr[data-file="{uploaded.id}"] time')
    expect(shown).to_have_attribute("title", absolute(uploaded.created_at))
    expect(shown).to_have_text(re.compile(r"^(just now|\d+ seconds? ago|\d+ minutes? ago)$"))
    page_a.goto(f"/ui/files/{uploaded.id}")
    expect(page_a.get_by_test_id("file-details").locator("time")).to_have_attribute(
        "title", absolute(uploaded.created_at)
    )


# --- matrix metrics -----------------------------------------------------------------------------------------


def test_matrix_page_shows_key_metrics_percentiles_and_charts(page_a: Page, reports_dir: Path) -> None:
    report = json.loads((reports_dir / PERCENTILE_MATRIX / "report.json").read_text())
    cells = [CellResult.model_validate(item) for item in report["results"]]

    page_a.goto("/ui/matrices")
    row = page_a.locator("tr", has_text=PERCENTILE_MATRIX)
    expect(row.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"))
    row.get_by_role("link", name=PERCENTILE_MATRIX).click()

    metrics = page_a.get_by_test_id("cell-metrics")
    headers = metrics.locator("thead th").all_inner_texts()
    assert headers[:2] == ["cell", "rating"]
    assert {"tokens/s", "TTFT (mean)", "TTFT p95", "peak memory"} <= set(headers)
    for cell in cells:
        values: dict[str, Any] = cell.profiles["interactive"].metrics
        line = metrics.locator(f'tr[data-cell="{cell.key}"]')
        for name in ("tokens_per_second", "ttft_p95_seconds"):
            expect(line.locator(f'td[data-metric="{name}"]')).to_have_text(format_value(name, values[name]))
        expect(line.locator('td[data-metric="peak_memory_gb"]')).to_have_text(
            format_value("peak_memory_gb", cell.peak_memory_gb)
        )

    table = page_a.get_by_test_id("cell-percentiles")
    assert table.locator("thead th").all_inner_texts() == ["cell", "profile", "itl p99", "ttft p50", "ttft p95"]
    for cell in cells:
        values = cell.profiles["interactive"].metrics
        line = table.locator(f'tr[data-cell="{cell.key}"][data-profile="interactive"]')
        for name in ("itl_p99_seconds", "ttft_p50_seconds", "ttft_p95_seconds"):
            expected = format_value(name, values[name]) if name in values else "–"
            expect(line.locator(f'td[data-metric="{name}"]')).to_have_text(expected)

    figures = page_a.get_by_test_id("charts").locator("figure")
    expect(figures).to_have_count(len(charts(cells)))
    tokens = figures.filter(has_text="Tokens/s vs model size")
    expect(tokens.locator("svg.chart circle")).to_have_count(len(cells))  # one point per cell
