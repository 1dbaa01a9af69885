"""`kubeinfer bench run`: the README's main job, through the CLI, on the real engine and model."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import matrix_verdicts

HERE = Path(__file__).parent
MATRIX = HERE / "matrix.yaml"
KUBEINFER = [sys.executable, "-m", "kubeinfer.cli.main"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KUBEINFER, *args], capture_output=True, text=True, timeout=timeout)


def llama_servers_using(out_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "llama-server" in cmdline and str(out_dir) in " ".join(p.path for p in _open_files(proc)):
            found.append(proc)
    return found


def _open_files(proc: psutil.Process) -> list[psutil._common.popenfile]:  # type: ignore[name-defined]
    try:
        return proc.open_files()
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return []


@pytest.fixture
def uninterrupted(local_matrix_run: Path) -> Path:
    return local_matrix_run


@pytest.fixture(scope="module")
def resume_matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MATRIX's three cells with only the interactive profile (one 8-token answer to a 128-token prompt in a
    256-token context) and a 2 s stress stage.

    Resuming is about cells, not profiles: each cell still starts its own server and streams an answer, which
    takes seconds, so a signal sent once the first cell is checkpointed lands mid-matrix, and a cell that ran
    again would show in its timings. The full profile set runs in `local_matrix_run`.
    """
    data = yaml.safe_load(MATRIX.read_text())
    data["spec"]["engine"]["ctxSize"] = 256
    profiles = data["spec"]["profiles"]
    for name in ("longContext", "batch", "quality"):
        profiles[name]["enabled"] = False
    profiles["stress"]["durationSeconds"] = 2
    path = tmp_path_factory.mktemp("resume-matrix") / "matrix.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def resume_uninterrupted(resume_matrix: Path, tmp_path_factory: pytest.TempPathFactory, engine_install: object) -> Path:
    """One uninterrupted run of `resume_matrix`: the statuses an interrupted and resumed run must reach."""
    out = tmp_path_factory.mktemp("resume-full")
    proc = run_cli("bench", "run", str(resume_matrix), "--out-dir", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.slow
def test_run_writes_json_csv_and_html_with_real_metrics(uninterrupted: Path) -> None:
    report = json.loads((uninterrupted / "report.json").read_text())
    assert set(report) >= {"metadata", "results", "recommendations"}
    assert report["metadata"]["hardware"]["cpus"] >= 1
    assert [f"{r['model']}/{r['quantization']}" for r in report["results"]] == [
        "smollm2-135m/Q4_K_M",
        "smollm2-135m/Q8_0",
        "smollm2-135m/Q4_1",
    ]
    for cell in report["results"]:
        assert cell["status"] in ("passed", "partial"), cell["reason"]
        interactive = cell["profiles"]["interactive"]
        assert interactive["metrics"]["tokens_per_second"] > 0
        assert interactive["metrics"]["ttft_seconds"] > 0
        assert interactive["rating"] in ("excellent", "good", "acceptable", "poor", "failed")
        assert cell["profiles"]["quality"]["metrics"]["overall_score"] >= 0
        assert cell["model_size_gb"] > 0.05
        assert cell["peak_memory_gb"] > 0.05
    stressed = [c for c in report["results"] if c["profiles"].get("stress", {}).get("status") not in (None, "skipped")]
    assert len(stressed) == 1, "rule 6: exactly one configuration is stress-tested"
    rows = list(csv.DictReader((uninterrupted / "report.csv").open()))
    assert len(rows) == 3
    html = (uninterrupted / "report.html").read_text()
    assert "smollm2-135m" in html
    assert "<svg" in html
    assert (uninterrupted / "logs" / "smollm2-135m_Q4_K_M.log").read_text().strip()


def test_memory_limit_skips_every_cell_with_the_preflight_reason(tmp_path: Path, engine_install: object) -> None:
    manifest = tmp_path / "tight.yaml"
    manifest.write_text(
        MATRIX.read_text().replace("maxLoadTimeSeconds: 600", "maxLoadTimeSeconds: 600\n    maxMemoryGb: 0.05")
    )
    proc = run_cli("bench", "run", str(manifest), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["status"] for r in report["results"]} == {"skipped"}
    assert {r["rule"] for r in report["results"]} == {"preflight_memory"}
    assert "exceeds the memory limit of 0.05 GB" in report["results"][0]["reason"]


def test_missing_model_file_is_an_error_cell_not_a_traceback(tmp_path: Path, engine_install: object) -> None:
    manifest = tmp_path / "missing.yaml"
    manifest.write_text(MATRIX.read_text().replace("pypi:smollm2-135m", f"file://{tmp_path}/absent.gguf"))
    proc = run_cli("bench", "run", str(manifest), "--out-dir", str(tmp_path / "out"))
    assert "Traceback" not in proc.stderr + proc.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["status"] for r in report["results"]} == {"error"}
    assert "model file not found" in report["results"][0]["reason"]


def test_corrupt_model_file_is_an_error_cell_naming_the_file(tmp_path: Path, engine_install: object) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(4096))
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(MATRIX.read_text().replace("pypi:smollm2-135m", f"file://{broken}"))
    proc = run_cli("bench", "run", str(manifest), "--out-dir", str(tmp_path / "out"))
    assert "Traceback" not in proc.stderr + proc.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["status"] for r in report["results"]} == {"error"}
    assert all(str(broken) in r["reason"] for r in report["results"])


def test_load_timeout_fails_the_cell_and_skips_the_model_as_too_large(tmp_path: Path, engine_install: object) -> None:
    """Rule 2 for real: llama-server cannot load within maxLoadTimeSeconds."""
    manifest = tmp_path / "slow.yaml"
    manifest.write_text(MATRIX.read_text().replace("maxLoadTimeSeconds: 600", "maxLoadTimeSeconds: 0.01"))
    proc = run_cli("bench", "run", str(manifest), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "report.json").read_text())["results"]
    first, *rest = results
    assert (first["status"], first["rule"]) == ("failed", "load_failure")
    assert "did not become healthy within" in first["reason"]
    assert {(r["status"], r["rule"]) for r in rest} == {("skipped", "load_failure")}
    assert all("marked too large" in r["reason"] for r in rest)
    _wait_no_server(tmp_path / "out")


def test_broken_manifest_exits_with_the_field_named(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(MATRIX.read_text().replace("ctxSize: 2048", "ctxSize: -5"))
    proc = run_cli("bench", "run", str(manifest))
    assert proc.returncode == 1
    assert "spec.engine.ctxSize" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    proc = run_cli("bench", "run", str(MATRIX), "--dry-run", "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "smollm2-135m/Q4_K_M" in proc.stdout
    assert "smollm2-135m/Q4_1" in proc.stdout
    assert not (tmp_path / "out").exists()


def without_stress(cell: dict) -> dict:  # type: ignore[type-arg]
    """A cell as measured; the stress stage, which runs after every cell, adds its own entry later."""
    return {**cell, "profiles": {k: v for k, v in cell["profiles"].items() if k != "stress"}}


def _wait_for_cells(out: Path, count: int, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    checkpoint = out / "checkpoint.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if checkpoint.exists():
            try:
                if len(json.loads(checkpoint.read_text())["cells"]) >= count:
                    return
            except json.JSONDecodeError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint with {count} cells after {timeout}s")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_interrupt_finishes_without_rerunning_cells(
    how: signal.Signals, tmp_path: Path, resume_matrix: Path, resume_uninterrupted: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*KUBEINFER, "bench", "run", str(resume_matrix), "--out-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_cells(out, 1, proc)
    proc.send_signal(how)
    proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130
    _wait_no_server(out)
    before = json.loads((out / "checkpoint.json").read_text())["cells"]
    assert 1 <= len(before) < 3, "the signal must land mid-matrix"
    resumed = run_cli("bench", "run", str(resume_matrix), "--out-dir", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = json.loads((out / "checkpoint.json").read_text())["cells"]
    assert len(after) == 3
    for key, cell in before.items():
        assert without_stress(after[key]) == without_stress(cell), f"{key} was re-run"
    full = json.loads((resume_uninterrupted / "report.json").read_text())
    again = json.loads((out / "report.json").read_text())
    assert matrix_verdicts(again["results"]) == matrix_verdicts(full["results"])


def _wait_no_server(out: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not llama_servers_using(out):
            return
        time.sleep(0.2)
    raise AssertionError("a llama-server outlived the interrupted run")


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("bench", "run", str(MATRIX), "--out-dir", str(tmp_path / "none"), "--resume")
    assert proc.returncode == 1
    assert "nothing to resume" in proc.stderr
