"""`pip install kubeinfer` without extras, for real: a fresh virtualenv, the package from this checkout, PyPI.

About 10 s on 2 cores (pip's wheel cache cold or warm alike), so it stays in the unit tier; it needs PyPI,
as `make setup` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubeinfer import __version__

ROOT = Path(__file__).resolve().parents[3]
HINT = "install kubeinfer[operator] for cluster commands"

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without system site-packages holding `pip install <checkout>` and nothing else."""
    base = tmp_path_factory.mktemp("bare-install")
    source = base / "src"
    source.mkdir()
    # A copy, so the build writes its egg-info and build/ there and never into the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "kubeinfer", source / "kubeinfer", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    # This interpreter's pip installs into the venv (`--python`), so the venv needs no pip of its own; the
    # modules are compiled when the first command imports them (`cli`), not all of them at install.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = ["--python", str(venv / "bin" / "python")]
    pip = [sys.executable, "-m", "pip", *target, "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    installed = subprocess.run([*pip, str(source)], capture_output=True, text=True, env=_env(base))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "KUBECONFIG", "KUBEINFER_MODEL_DIR")
    }
    return {**env, "KUBEINFER_CACHE_DIR": str(home / "cache"), "HOME": str(home), "OPENAI_BASE_URL": ""}


def cli(venv: Path, *args: str, script: str = "kubeinfer") -> subprocess.CompletedProcess[str]:
    """`script` of the venv; the bytecode its imports compile to is kept in the venv for the next command."""
    env = {k: v for k, v in _env(venv.parent).items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.run(
        [str(venv / "bin" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "200"},
        cwd=ROOT,
    )


def test_no_extras_gives_the_version_and_the_kubectl_plugin(bare_venv: Path) -> None:
    for script in ("kubeinfer", "kubectl-kubeinfer"):
        result = cli(bare_venv, "--version", script=script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"kubeinfer {__version__}"
    imports = subprocess.run([str(bare_venv / "bin" / "python"), "-c", "import openai, kopf"], capture_output=True)
    assert b"No module named 'kopf'" in imports.stderr  # openai came with the package, kopf did not


@pytest.mark.parametrize(
    "args",
    [
        ["operator", "run"],
        ["batch", "list", "-n", "team"],
        ["workers", "list", "--context", "kind"],
        ["bench", "report", "q"],
    ],
)
def test_no_extras_cluster_commands_say_what_to_install(bare_venv: Path, args: list[str]) -> None:
    result = cli(bare_venv, *args)
    assert result.returncode == 1
    assert HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_extras_local_commands_work(bare_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    made = cli(
        bare_venv, "batch", "from-csv", "examples/reviews.csv", "--template", "Sentiment of: {review}", "-O", str(out)
    )
    assert made.returncode == 0, made.stderr
    assert len(out.read_text().splitlines()) == 8
    valid = cli(bare_venv, "bench", "validate", "examples/quickstart.yaml")
    assert valid.returncode == 0, valid.stderr
    listed = cli(bare_venv, "models", "list", "-o", "json")
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")
