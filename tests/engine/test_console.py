"""The web console in headless Chromium (Debian's, driven by Playwright) against a real gateway process.

The gateway runs as its own process (`python -m kubeinfer.gateway`) on the session's real llama-server;
batches really run, the matrix comes from a real `kubeinfer bench run`, the analysis reads the bundled
GGUF. Nothing is mocked.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from kubeinfer.bench.recommend import cell_rating
from kubeinfer.bench.report.html_report import charts, format_value
from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.gateway.ui.matrix_view import PERCENTILE
from kubeinfer.models.analysis import analyze
from kubeinfer.resources.benchmark_matrix import CellResult
from testbed.browser import open_context, sign_in, signed_in_page
from testbed.gateway_process import GatewayProcess
from testbed.wait import wait_for

expect.set_options(timeout=30_000)

MODEL = "smollm2-135m"
KEY_A, KEY_B = "sk-console-a", "sk-console-b"
MATRIX = Path(__file__).parents[2] / "hack" / "screenshots" / "matrix.yaml"
MATRIX_NAME = "console-demo"
#: Upper bound for a batch to finish; never a measured duration.
BATCH_WAIT_MS = 600_000
RATING_COLOURS = {
    "excellent": "rgb(26, 127, 55)",
    "good": "rgb(74, 194, 107)",
    "acceptable": "rgb(212, 167, 44)",
    "poor": "rgb(225, 111, 36)",
    "failed": "rgb(207, 34, 46)",
}


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The console's reports folder; holds one broken report from the start, the finished matrix later."""
    root = tmp_path_factory.mktemp("reports")
    (root / "broken").mkdir()
    (root / "broken" / "report.json").write_text("{this is not json")
    return root


@pytest.fixture(scope="module")
def finished_matrix(reports_dir: Path, engine_install: EngineInstall, smollm2_gguf: Path) -> Path:
    """A real `kubeinfer bench run` of hack/screenshots/matrix.yaml (two cells) into the reports folder."""
    out = reports_dir / MATRIX_NAME
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "run", str(MATRIX), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def gateway(
    llama_server: LlamaServer, reports_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """`python -m kubeinfer.gateway` with two projects, the reports folder and the llama-server's log folder."""
    work = tmp_path_factory.mktemp("console-gateway")
    env = {
        "KUBEINFER_GATEWAY__API_KEYS": f"{KEY_A}=projectA,{KEY_B}=projectB",
        "KUBEINFER_GATEWAY__REPORTS_DIR": str(reports_dir),
        "KUBEINFER_GATEWAY__LOGS_DIR": str(llama_server.log_path.parent),
    }
    process = GatewayProcess(work / "data", llama_server.base_url, work / "gateway.log", env).start()
    yield process
    process.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)


@pytest.fixture
def page_a(browser: Browser, gateway: GatewayProcess) -> Iterator[Page]:
    """A browser signed in as project A through the login form."""
    page = signed_in_page(browser, gateway.url, KEY_A)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def completed_batch(gateway: GatewayProcess) -> openai.types.Batch:
    """A small batch of project A that finished, for the pages that show finished batches."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    batch_id = submit(client, requests(6, "done"))
    return wait_batch(client, batch_id)


# --- helpers ------------------------------------------------------------------------------------------------


def requests(count: int, prefix: str, max_tokens: int = 16) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Write one sentence about the number {i}."}],
                "max_tokens": max_tokens,
                "temperature": 0,
            },
        }
        for i in range(count)
    ]


def submit(client: openai.OpenAI, lines: list[dict[str, Any]], metadata: dict[str, str] | None = None) -> str:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(body)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata
    )
    return batch.id


def wait_batch(client: openai.OpenAI, batch_id: str) -> openai.types.Batch:
    terminal = {"completed", "failed", "expired", "cancelled"}
    wait_for(lambda: client.batches.retrieve(batch_id).status in terminal, BATCH_WAIT_MS / 1000, 0.2)
    return client.batches.retrieve(batch_id)


def number(page: Page, field: str) -> int:
    return int(page.locator(f'[data-field="{field}"]').inner_text().replace(",", ""))


# --- login --------------------------------------------------------------------------------------------------


def test_login_rejects_wrong_key_and_stores_the_key_httponly_samesite_strict(
    browser: Browser, gateway: GatewayProcess
) -> None:
    context = open_context(browser, gateway.url)
    page = context.new_page()
    page.goto("/ui/batches")
    expect(page).to_have_url(f"{gateway.url}/ui/login")

    page.get_by_label("API key").fill("sk-wrong")
    with page.expect_response(f"{gateway.url}/ui/login") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Incorrect API key provided.")
    assert "kubeinfer_key" not in {c["name"] for c in context.cookies()}

    page.get_by_label("API key").fill(KEY_A)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{gateway.url}/ui/batches")
    expect(page.get_by_test_id("project")).to_have_text("projectA")

    cookies = {c["name"]: c for c in context.cookies()}
    for name in ("kubeinfer_key", "kubeinfer_csrf"):
        assert cookies[name]["httpOnly"] is True
        assert cookies[name]["sameSite"] == "Strict"
        assert cookies[name]["path"] == "/ui"
    assert cookies["kubeinfer_key"]["value"] == KEY_A
    assert page.evaluate("document.cookie") == ""  # no script on the page can read the key

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{gateway.url}/ui/login")
    page.goto("/ui/jobs")
    expect(page).to_have_url(f"{gateway.url}/ui/login")
    context.close()


def test_login_whitespace_key_is_refused_with_a_message(browser: Browser, gateway: GatewayProcess) -> None:
    context = open_context(browser, gateway.url)
    page = context.new_page()
    page.goto("/ui/login")
    page.get_by_label("API key").fill("   ")
    with page.expect_response(f"{gateway.url}/ui/login") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_have_text("Enter an API key.")
    context.close()


# --- batches ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_page_counts_update_while_running_then_output_downloads(page_a: Page, client: openai.OpenAI) -> None:
    total = 48
    # 12 tokens each (was 24): the batch still runs several of the page's 1 s polls on this machine
    batch_id = submit(client, requests(total, "live", max_tokens=12))
    page_a.goto(f"/ui/batches/{batch_id}")
    shown_at_load = number(page_a, "completed")
    assert shown_at_load < total
    page_a.evaluate("window.consoleLoaded = true")  # gone if the page reloads

    # the counts change in place, on the page loaded above, while the batch is still running
    page_a.wait_for_function(
        """([before, total]) => {
            const value = (field) => document.querySelector(`[data-field="${field}"]`).textContent.trim();
            const completed = Number(value("completed").replace(/,/g, ""));
            return window.consoleLoaded === true && value("status") === "in_progress"
                && completed > before && completed < total;
        }""",
        arg=[shown_at_load, total],
        timeout=BATCH_WAIT_MS,
    )
    assert number(page_a, "total") == total
    assert number(page_a, "prompt_tokens") > 0

    expect(page_a.locator('[data-field="status"]')).to_have_text("completed", timeout=BATCH_WAIT_MS)
    batch = client.batches.retrieve(batch_id)
    assert batch.usage is not None
    assert number(page_a, "completed") == total
    assert number(page_a, "failed") == 0
    assert number(page_a, "total_tokens") == batch.usage.total_tokens
    assert number(page_a, "completion_tokens") == batch.usage.output_tokens
    expect(page_a.locator('[data-field="token_throughput"]')).to_contain_text("tokens/s")

    with page_a.expect_download() as download_info:
        page_a.get_by_test_id("download-output").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    assert batch.output_file_id is not None
    assert downloaded == client.files.content(batch.output_file_id).content
    results = [json.loads(line) for line in downloaded.decode().splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(f"live-{i}" for i in range(total))
    assert all(r["response"]["status_code"] == 200 for r in results)


def test_cancel_button_cancels_a_running_batch(page_a: Page, client: openai.OpenAI) -> None:
    batch_id = submit(client, requests(400, "cancel", max_tokens=32))
    page_a.goto(f"/ui/batches/{batch_id}")
    expect(page_a.locator('[data-field="status"]')).to_have_text("in_progress", timeout=BATCH_WAIT_MS)
    page_a.reload()  # the button is rendered with the page
    page_a.get_by_role("button", name="Cancel batch").click()
    expect(page_a.locator('[data-field="status"]')).to_have_text("cancelled", timeout=BATCH_WAIT_MS)
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "cancelled"
    assert batch.request_counts is not None
    assert batch.request_counts.completed < 400
    expect(page_a.get_by_role("button", name="Cancel batch")).to_have_count(0)


def test_cancelling_a_finished_batch_says_why(page_a: Page, completed_batch: openai.types.Batch) -> None:
    """A stale page's cancel button on a batch that finished meanwhile gets a clear refusal."""
    page_a.goto(f"/ui/batches/{completed_batch.id}")
    token = page_a.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    response = page_a.request.post(f"/ui/batches/{completed_batch.id}/cancel", form={"csrf_token": token})
    assert response.status == 409
    assert "is completed and cannot be cancelled" in response.text()


def test_batch_metadata_with_script_renders_as_text(page_a: Page, client: openai.OpenAI) -> None:
    hostile = {
        "note": "<script>window.pwned = 'script'</script>",
        "img": "<img src=x onerror=\"window.pwned = 'img'\">",
    }
    batch_id = submit(client, requests(1, "escape"), metadata=hostile)

    response = page_a.goto(f"/ui/batches/{batch_id}")
    assert response is not None
    html = response.text()
    assert "&lt;script&gt;window.pwned" in html
    assert "<script>window.pwned" not in html
    assert "script-src 'self'" in response.headers["content-security-policy"]
    shown = page_a.get_by_test_id("metadata").all_inner_texts()
    assert shown == [f"note: {hostile['note']}", f"img: {hostile['img']}"]
    assert page_a.evaluate("window.pwned") is None

    list_response = page_a.goto("/ui/batches")
    assert list_response is not None
    assert "&lt;img src=x onerror=" in list_response.text()
    expect(page_a.get_by_text(hostile["note"])).to_be_visible()
    assert page_a.evaluate("window.pwned") is None
    wait_batch(client, batch_id)


def test_unknown_batch_and_file_are_404_pages(page_a: Page) -> None:
    response = page_a.goto("/ui/batches/batch-doesnotexist")
    assert response is not None
    assert response.status == 404
    expect(page_a.get_by_role("alert")).to_have_text("No such Batch object: batch-doesnotexist")
    response = page_a.goto("/ui/files/file-doesnotexist/content")
    assert response is not None
    assert response.status == 404


def test_a_project_sees_only_its_own_batches_and_files(
    browser: Browser, gateway: GatewayProcess, completed_batch: openai.types.Batch
) -> None:
    context = open_context(browser, gateway.url)
    page = context.new_page()
    sign_in(page, KEY_B)
    page.goto("/ui/batches")
    expect(page.get_by_text(completed_batch.id)).to_have_count(0)
    page.goto("/ui/jobs")
    expect(page.get_by_text(completed_batch.id)).to_have_count(0)
    response = page.goto(f"/ui/batches/{completed_batch.id}")
    assert response is not None
    assert response.status == 404
    assert completed_batch.output_file_id is not None
    response = page.goto(f"/ui/files/{completed_batch.output_file_id}/content")
    assert response is not None
    assert response.status == 404
    context.close()


def test_job_history_shows_the_token_columns(
    page_a: Page, gateway: GatewayProcess, completed_batch: openai.types.Batch
) -> None:
    history = httpx.get(f"{gateway.url}/v1/jobs/history", headers={"Authorization": f"Bearer {KEY_A}"}).json()
    entry = next(job for job in history["jobs"] if job["batch_id"] == completed_batch.id)

    page_a.goto("/ui/jobs?status=completed")
    headers = page_a.locator("table.jobs thead th").all_inner_texts()
    assert headers[-6:] == [
        "prompt tokens",
        "completion tokens",
        "total tokens",
        "inference s",
        "tokens/s",
        "requests/s",
    ]
    row = page_a.locator("table.jobs tbody tr", has_text=completed_batch.id)
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "completed"
    assert [int(c.replace(",", "")) for c in cells[5:11]] == [
        entry["total_requests"],
        entry["completed_requests"],
        entry["failed_requests"],
        entry["prompt_tokens"],
        entry["completion_tokens"],
        entry["total_tokens"],
    ]
    assert float(cells[12].replace(",", "")) == pytest.approx(entry["token_throughput"], abs=0.01)


def test_job_history_unknown_status_is_a_clear_error(page_a: Page) -> None:
    response = page_a.goto("/ui/jobs?status=exploded")
    assert response is not None
    assert response.status == 400
    expect(page_a.get_by_role("alert")).to_contain_text("status must be one of validating")
    response = page_a.goto("/ui/jobs?limit=0")
    assert response is not None
    assert response.status == 400
    expect(page_a.get_by_role("alert")).to_contain_text("limit: Input should be greater than or equal to 1")


# --- cross-site requests ------------------------------------------------------------------------------------


def test_cross_site_form_post_is_rejected(
    page_a: Page, client: openai.OpenAI, gateway: GatewayProcess, attacker_site: tuple[str, list[bytes]]
) -> None:
    """Another origin on the same host (so SameSite cookies are sent) posts the cancel form: refused."""
    batch_id = submit(client, requests(200, "csrf", max_tokens=32))
    site, pages = attacker_site
    target = f"{gateway.url}/ui/batches/{batch_id}/cancel"
    pages.append(
        f'<form id="f" method="post" action="{target}"><input name="csrf_token" value="guessed"></form>'
        '<script>document.getElementById("f").submit()</script>'.encode()
    )
    with page_a.expect_response(target) as answer:
        page_a.goto(site)
    assert answer.value.status == 403
    expect(page_a.get_by_role("alert")).to_contain_text("Refused: the form was posted from another site")

    # same origin but without the page's token (a script or tool replaying the cookie): refused as well
    response = page_a.request.post(target, form={"csrf_token": "x" * 43})
    assert response.status == 403
    assert "security token is missing or does not match" in response.text()
    response = page_a.request.post("/ui/logout", form={})
    assert response.status == 403

    assert client.batches.retrieve(batch_id).status not in ("cancelling", "cancelled")
    client.batches.cancel(batch_id)
    wait_batch(client, batch_id)


def test_login_form_needs_the_csrf_token(browser: Browser, gateway: GatewayProcess) -> None:
    context = open_context(browser, gateway.url)
    response = context.request.post("/ui/login", form={"api_key": KEY_A}, max_redirects=0)
    assert response.status == 403
    assert "kubeinfer_key" not in {c["name"] for c in context.cookies()}
    context.close()


# --- models -------------------------------------------------------------------------------------------------


def test_analyze_form_shows_memory_breakdown_for_the_bundled_gguf(page_a: Page, smollm2_gguf: Path) -> None:
    expected = analyze(str(smollm2_gguf), 2048, 2, 16.0)["memory"]

    page_a.goto("/ui/models")
    installed = page_a.locator("table", has=page_a.get_by_role("columnheader", name="quantization"))
    expect(installed.get_by_role("cell", name="Q4_1", exact=True)).to_be_visible()
    form = page_a.get_by_test_id("analyze-form")
    form.get_by_label("Model").fill(str(smollm2_gguf))
    form.get_by_label("Context size").fill("2048")
    form.get_by_label("Parallel sequences").fill("2")
    form.get_by_label("Memory available, GiB").fill("16")
    form.get_by_role("button", name="Analyze").click()

    analysis = page_a.get_by_test_id("analysis")
    expect(analysis).to_contain_text(f"{smollm2_gguf.stem}: fits")
    table = page_a.get_by_test_id("memory-breakdown")
    for part in ("model_gb", "kv_cache_gb", "overhead_gb", "total_gb", "cpu_offload_gb", "available_gb"):
        value = table.locator(f'tr[data-part="{part}"] td').first.inner_text()
        assert float(value) == pytest.approx(expected[part], abs=0.005), part
    assert expected["model_gb"] > 0
    assert expected["kv_cache_gb"] > 0
    assert page_a.locator("svg.stack-bar rect").count() == 3


def test_analyze_form_reports_broken_input(page_a: Page) -> None:
    page_a.goto("/ui/models")
    form = page_a.get_by_test_id("analyze-form")
    form.get_by_label("Context size").fill("lots")
    with page_a.expect_response("**/ui/models/analyze") as answer:
        form.get_by_role("button", name="Analyze").click()
    assert answer.value.status == 400
    expect(page_a.get_by_test_id("analyze-error")).to_contain_text("ctx_size: Input should be a valid integer")
    expect(page_a.get_by_test_id("analyze-form").get_by_label("Context size")).to_have_value("lots")

    form = page_a.get_by_test_id("analyze-form")
    form.get_by_label("Context size").fill("4096")
    form.get_by_label("Model").fill("/no/such/model.gguf")
    with page_a.expect_response("**/ui/models/analyze") as answer:
        form.get_by_role("button", name="Analyze").click()
    assert answer.value.status == 403
    expect(page_a.get_by_test_id("analyze-error")).to_contain_text("local GGUF paths must be inside the model cache")


# --- benchmark matrices -------------------------------------------------------------------------------------


def test_matrix_page_shows_the_cell_grid_of_a_finished_matrix(page_a: Page, finished_matrix: Path) -> None:
    report = json.loads((finished_matrix / "report.json").read_text())
    cells = [CellResult.model_validate(item) for item in report["results"]]

    page_a.goto("/ui/matrices")
    row = page_a.locator("tr", has_text=MATRIX_NAME)
    expect(row).to_contain_text(f"{len(cells)}")
    expect(page_a.locator("tr", has_text="broken")).to_contain_text("not a kubeinfer report")
    row.get_by_role("link", name=MATRIX_NAME).click()

    grid = page_a.get_by_test_id("cell-grid")
    expect(grid).to_be_visible()
    quants = grid.locator("tr").first.locator("th").all_inner_texts()[1:]
    assert sorted(quants) == sorted(cell.quantization for cell in cells)
    for cell in cells:
        rating = cell_rating(cell)
        td = grid.locator("tr", has_text=cell.model).locator("td").nth(quants.index(cell.quantization))
        expect(td).to_have_text(rating or cell.status.value)
        if rating is not None:
            expect(td).to_have_class(f"r-{rating}")
            expect(td).to_have_css("background-color", RATING_COLOURS[rating])

    # the key metrics of the real run, each cell's as the report holds them, and the report's charts
    metrics = page_a.get_by_test_id("cell-metrics")
    for cell in cells:
        measured = cell.profiles["interactive"].metrics
        line = metrics.locator(f'tr[data-cell="{cell.key}"]')
        for name in ("tokens_per_second", "ttft_seconds"):
            expect(line.locator(f'td[data-metric="{name}"]')).to_have_text(format_value(name, measured[name]))
        percentiles = {name: value for name, value in measured.items() if PERCENTILE.match(name)}
        row = page_a.locator(f'[data-testid="cell-percentiles"] tr[data-cell="{cell.key}"][data-profile="interactive"]')
        for name, value in percentiles.items():
            expect(row.locator(f'td[data-metric="{name}"]')).to_have_text(format_value(name, value))
    expect(page_a.get_by_test_id("charts").locator("figure")).to_have_count(len(charts(cells)))
    expect(page_a.get_by_test_id("charts").locator("svg.chart").first).to_be_visible()

    with page_a.expect_popup() as popup_info:
        page_a.get_by_test_id("html-report").click()
    popup = popup_info.value
    expect(popup).to_have_title(f"kubeinfer report: {MATRIX_NAME}")
    expect(popup.locator("table.grid")).to_be_visible()


def test_broken_and_unknown_matrices_say_so(page_a: Page) -> None:
    response = page_a.goto("/ui/matrices/broken")
    assert response is not None
    assert response.status == 422
    expect(page_a.get_by_role("alert")).to_contain_text("not a kubeinfer report: Expecting property name")
    response = page_a.goto("/ui/matrices/nothing-here")
    assert response is not None
    assert response.status == 404
    expect(page_a.get_by_role("alert")).to_have_text("No such benchmark matrix report: nothing-here")
    response = page_a.goto("/ui/matrices/..%2F..%2Fetc/report.html")
    assert response is not None
    assert response.status == 404


# --- logs ---------------------------------------------------------------------------------------------------


def test_logs_page_tails_searches_and_downloads_the_model_server_log(
    page_a: Page, llama_server: LlamaServer, client: openai.OpenAI
) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
    page_a.goto("/ui/logs")
    page_a.get_by_role("link", name=llama_server.log_path.name).click()
    expect(page_a.get_by_test_id("log-summary")).to_contain_text("The last")
    assert page_a.get_by_test_id("log-lines").inner_text().strip()

    search = page_a.get_by_test_id("log-search")
    search.get_by_label("search").fill("SLOT")
    search.get_by_role("button", name="Show").click()
    expect(page_a.get_by_test_id("log-summary")).to_contain_text("lines contain “SLOT”")
    lines = page_a.get_by_test_id("log-lines").inner_text().strip().splitlines()
    assert lines
    assert all("slot" in line.lower() for line in lines)

    with page_a.expect_download() as download_info:
        page_a.get_by_test_id("log-download").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    assert downloaded
    assert llama_server.log_path.read_bytes().startswith(downloaded)  # the server may append meanwhile


def test_logs_reject_unknown_ids_and_bad_line_counts(page_a: Page) -> None:
    response = page_a.goto("/ui/logs/view?id=../../etc/passwd")
    assert response is not None
    assert response.status == 404
    expect(page_a.get_by_role("alert")).to_have_text("No such log: ../../etc/passwd")
    response = page_a.goto("/ui/logs/view?id=logs/server.log&lines=0")
    assert response is not None
    assert response.status == 400
    expect(page_a.get_by_role("alert")).to_contain_text("lines: Input should be greater than or equal to 1")
