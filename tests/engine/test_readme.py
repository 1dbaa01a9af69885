"""The README's "Using it" commands, run as written: engine, models, bench plan, a gateway and a batch from the CSV.

Each line of the block runs through bash in a scratch folder that holds `examples/`, with the session's engine
and model cache and a free port in place of 8080. Two kinds of line are not run here, each for a reason
named in NOT_RUN_HERE; tests/unit/project/test_docs.py checks every documented command against the CLI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.settings import Settings
from testbed.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
NOT_RUN_HERE = {
    "make setup": "the session's fixtures built the engine and pulled the model the same way",
    "source .venv/bin/activate": "PATH already starts with this interpreter's bin folder",
    "--out-dir results/quickstart": "a full quickstart sweep; tests/engine/test_bench_run.py runs `bench run "
    "--out-dir` and `--resume` on a two-cell matrix",
}


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using it") :]
    block = section[
        section.index("```bash\n") + len("```bash\n") : section.index("```", section.index("```bash\n") + 7)
    ]
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def skipped_because(line: str) -> str | None:
    return next((why for marker, why in NOT_RUN_HERE.items() if marker in line and "--dry-run" not in line), None)


@pytest.fixture
def shell_env(settings: Settings, engine_install: object, smollm2: object, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KUBEINFER_CACHE_DIR": str(settings.cache_dir),
        "KUBEINFER_ENGINE_DIR": str(settings.engines_root),
        "KUBEINFER_MODEL_DIR": str(settings.models_root),
        "KUBEINFER_GATEWAY__DATA_DIR": str(tmp_path / "gateway-data"),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    env.pop("KUBECONFIG", None)
    return env


@pytest.mark.slow
def test_readme_local_commands_run_as_written(shell_env: dict[str, str], tmp_path: Path) -> None:
    port = str(free_port())
    lines = [line.replace("8080", port) for line in readme_block()]
    assert any(line.startswith("kubeinfer batch create --from-csv examples/reviews.csv") for line in lines)
    env = dict(shell_env)
    background: list[subprocess.Popen[bytes]] = []
    ran = []
    try:
        for line in lines:
            if skipped_because(line):
                continue
            if line.startswith("export "):
                for name, value in re.findall(r"(\w+)=(\S+)", line):
                    env[name] = value
                continue
            if line.endswith("&"):
                log = (tmp_path / "gateway.log").open("wb")
                background.append(
                    subprocess.Popen(["bash", "-c", line.rstrip("& ")], cwd=tmp_path, env=env, stdout=log, stderr=log)
                )
                wait_for(lambda: _healthy(port), timeout=300, interval=0.5)
                continue
            done = subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr, line
            ran.append((line, done.stdout))
        outputs = dict(ran)
        results = (tmp_path / "results.jsonl").read_text().splitlines()
        assert len(results) == 8  # one per row of examples/reviews.csv
        batch_line = next(line for line in outputs if line.startswith("kubeinfer batch create"))
        assert outputs[batch_line].strip().startswith("batch-")
        assert "llama-server" in outputs["kubeinfer workers list"]
        # the example script from the README: the same CSV to a pandas table
        table = subprocess.run(
            [sys.executable, "examples/csv_to_pandas.py", "examples/reviews.csv"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert table.returncode == 0, table.stderr
        assert "sentiment" in table.stdout.splitlines()[0]
        assert len(table.stdout.splitlines()) == 9
    finally:
        for process in background:
            process.terminate()
            process.wait(timeout=60)


def _healthy(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
