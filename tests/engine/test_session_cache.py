"""The engine tier works in the session's own model cache, never the user's (issue 18, part 6).

testbed.model_cache fails the whole session when the user's model cache changed; this test checks one real
command of the session, a derived quantization made by the CLI in a child process, lands in the session's cache.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kubeinfer.models.cache import CachedModel, ModelCache
from kubeinfer.settings import Settings
from testbed.model_cache import changes, snapshot, user_models_root


def test_the_cli_of_a_test_derives_into_the_session_cache_and_leaves_the_users_alone(
    pytestconfig: pytest.Config, settings: Settings, smollm2: CachedModel, engine_install: object
) -> None:
    user_root = user_models_root(pytestconfig)
    assert not smollm2.path.is_relative_to(user_root)
    assert smollm2.path.is_relative_to(settings.models_root)
    before = snapshot(user_root)
    proc = subprocess.run(
        [sys.executable, "-m", "kubeinfer.cli.main", "models", "pull", "smollm2-135m", "--quant", "Q5_1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    derived = ModelCache(settings.models_root).get("smollm2-135m", "Q5_1")
    assert derived is not None
    assert derived.source == "quantize:Q4_1 of pypi:smollm2-135m"
    assert str(derived.path) in proc.stdout.replace("\n", "")
    assert changes(before, snapshot(user_root)) == []
