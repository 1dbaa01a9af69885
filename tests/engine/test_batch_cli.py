"""The batch journey through the CLI: CSV to JSONL, submit, wait, download, analyze, against a real gateway."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeinfer.engines.llamacpp_server import LlamaServer
from testbed.gateway_process import KEY, GatewayProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def kubeinfer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "kubeinfer.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def gateway(llama_server: LlamaServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "data", llama_server.base_url, tmp_path / "gateway.log").start()
    yield process
    process.stop()


@pytest.mark.slow
def test_csv_to_results_through_the_cli(gateway: GatewayProcess, tmp_path: Path) -> None:
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("id,review\n" + "".join(f"r{i},The product number {i} was fine.\n" for i in range(6)))
    jsonl = tmp_path / "batch.jsonl"
    made = kubeinfer(
        "batch",
        "from-csv",
        str(csv_path),
        "--template",
        "Sentiment of: {review}",
        "--id-column",
        "id",
        "--max-tokens",
        "8",
        "--system",
        "Answer in one word.",
        "-O",
        str(jsonl),
    )
    assert made.returncode == 0, made.stderr
    assert len(jsonl.read_text().splitlines()) == 6
    env = {"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": KEY}
    submitted = kubeinfer("batch", "create", str(jsonl), env=env)
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    waited = kubeinfer("batch", "wait", batch_id, "--interval", "0.5", env=env)
    assert waited.returncode == 0, waited.stderr
    out = tmp_path / "results.jsonl"
    downloaded = kubeinfer("batch", "download", batch_id, "-O", str(out), env=env)
    assert downloaded.returncode == 0, downloaded.stderr
    ids = sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines())
    assert ids == [f"r{i}" for i in range(6)]
    summary = json.loads(kubeinfer("batch", "analyze", str(out), "-o", "json").stdout)
    assert summary["lines"] == 6
    listed = json.loads(kubeinfer("batch", "list", "-o", "json", env=env).stdout)
    assert batch_id in [row["id"] for row in listed]
    assert kubeinfer("batch", "list", "-o", "name", env=env).stdout.split() == [row["id"] for row in listed]


def test_create_from_csv_waits_and_downloads_in_one_command(gateway: GatewayProcess, tmp_path: Path) -> None:
    """The README's one-liner with the CSV that ships in examples/."""
    env = {"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": KEY}
    out = tmp_path / "results.jsonl"
    created = kubeinfer(
        "batch",
        "create",
        "--from-csv",
        str(EXAMPLES / "reviews.csv"),
        "--template",
        "Sentiment of: {review}",
        "--id-column",
        "id",
        "--max-tokens",
        "4",
        "--wait",
        "--interval",
        "0.5",
        "-O",
        str(out),
        env=env,
    )
    assert created.returncode == 0, created.stderr
    batch_id = created.stdout.strip()
    assert batch_id.startswith("batch-")
    assert f"{batch_id} completed" in created.stderr
    with (EXAMPLES / "reviews.csv").open() as rows:
        expected = sorted(row["id"] for row in csv.DictReader(rows))
    assert sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines()) == expected


def test_old_spellings_still_work(gateway: GatewayProcess, tmp_path: Path) -> None:
    """`batch submit`, `download -o FILE` and `from-csv -o FILE` from before the flags were made consistent."""
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("text\nhello\n")
    jsonl = tmp_path / "in.jsonl"
    made = kubeinfer(
        "batch", "from-csv", str(csv_path), "--template", "Say {text}", "--max-tokens", "4", "-o", str(jsonl)
    )
    assert made.returncode == 0, made.stderr
    env = {"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": KEY}
    batch_id = kubeinfer("batch", "submit", str(jsonl), env=env).stdout.strip()
    assert kubeinfer("batch", "wait", batch_id, "--interval", "0.5", env=env).returncode == 0
    out = tmp_path / "out.jsonl"
    assert kubeinfer("batch", "download", batch_id, "-o", str(out), env=env).returncode == 0
    assert len(out.read_text().splitlines()) == 1


def test_unknown_template_column_is_a_clear_error(tmp_path: Path) -> None:
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,text\n1,hello\n")
    result = kubeinfer("batch", "from-csv", str(csv_path), "--template", "Say {missing}")
    assert result.returncode == 2
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_api_key_is_reported_without_a_traceback(gateway: GatewayProcess, tmp_path: Path) -> None:
    jsonl = tmp_path / "one.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "custom_id": "a",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}]},
            }
        )
    )
    result = kubeinfer(
        "batch", "create", str(jsonl), env={"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": "wrong"}
    )
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "Traceback" not in result.stderr
