"""The test session's own model cache (`testbed.model_cache`): seeded from the user's, which it leaves unchanged.

Two inner pytest sessions run the plugin against a stand-in user cache in a temporary folder: one that writes
only where the plugin points it passes and leaves the user's cache as it was; one that writes into the user's
cache directly fails, naming the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubeinfer.models.cache import ModelCache
from kubeinfer.settings import Settings
from testbed.model_cache import MODEL_DIR_ENV, changes, seed, snapshot

ROOT = Path(__file__).resolve().parents[3]


def fake_cache(root: Path) -> Path:
    """A cache holding one verified model, one half-downloaded file and a lock, as a real one may."""
    cache = ModelCache(root)
    path = cache.path_for("m", "Q4_0")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF" + b"\0" * 60)
    cache.record("m", "Q4_0", "pypi:m")
    (path.parent / ".m.Q8_0.gguf.partial").write_bytes(b"GGUF")
    (path.parent / ".lock").touch()
    return path


def test_the_session_runs_on_a_temporary_cache_seeded_from_the_users() -> None:
    """This very session: Settings() names a cache outside the user's, holding what the user had verified."""
    session_root = Settings().models_root
    assert os.environ[MODEL_DIR_ENV] == str(session_root)
    assert not session_root.is_relative_to(Path.home() / ".cache" / "kubeinfer")


def test_seed_links_verified_files_only(tmp_path: Path) -> None:
    source = fake_cache(tmp_path / "user")
    seeded = seed(tmp_path / "user", tmp_path / "session")
    assert seeded == [tmp_path / "session" / "m" / "m.Q4_0.gguf"]
    assert seeded[0].stat().st_ino == source.stat().st_ino
    assert sorted(p.name for p in seeded[0].parent.iterdir()) == ["m.Q4_0.gguf", "m.Q4_0.gguf.json"]
    assert ModelCache(tmp_path / "session").get("m", "Q4_0", "pypi:m") is not None


def test_a_replaced_seeded_file_leaves_the_users_copy_alone(tmp_path: Path) -> None:
    """The cache writes through a temporary file and os.replace: the link is replaced, the user's inode kept."""
    source = fake_cache(tmp_path / "user")
    before = snapshot(tmp_path / "user")
    seed(tmp_path / "user", tmp_path / "session")
    session = ModelCache(tmp_path / "session")
    tmp = session.path_for("m", "Q4_0").with_name("new")
    tmp.write_bytes(b"GGUF rewritten")
    tmp.replace(session.path_for("m", "Q4_0"))
    session.record("m", "Q4_0", "pypi:m")
    assert source.read_bytes() == b"GGUF" + b"\0" * 60
    assert changes(before, snapshot(tmp_path / "user")) == []


def test_changes_names_added_removed_and_changed_files_but_not_locks(tmp_path: Path) -> None:
    path = fake_cache(tmp_path)
    before = snapshot(tmp_path)
    (path.parent / ".lock").write_text("held")
    (path.parent / "new.gguf").write_bytes(b"x")
    (path.parent / ".m.Q8_0.gguf.partial").unlink()
    path.write_bytes(b"GGUF changed in place")
    assert changes(before, snapshot(tmp_path)) == [
        "added m/new.gguf",
        "removed m/.m.Q8_0.gguf.partial",
        f"changed m/m.Q4_0.gguf (size 64 -> 21, mtime {before['m/m.Q4_0.gguf'][1]} -> {path.stat().st_mtime_ns})",
    ]


INNER_TEST = """
import os
from pathlib import Path

from kubeinfer.models.cache import ModelCache
from kubeinfer.settings import Settings


def test_work_in_the_session_cache():
    cache = ModelCache(Settings().models_root)
    seeded = cache.get("m", "Q4_0", "pypi:m")
    assert seeded is not None
    assert seeded.path != Path(os.environ["USER_MODELS"]) / "m" / "m.Q4_0.gguf"
    derived = cache.path_for("m", "Q8_0")
    derived.write_bytes(b"GGUF derived")
    cache.record("m", "Q8_0", "quantize:Q4_0 of pypi:m")
    if os.environ.get("ALSO_WRITE_THE_USERS"):
        (Path(os.environ["USER_MODELS"]) / "m" / "stray.gguf").write_bytes(b"oops")
"""


def inner_session(tmp_path: Path, also_write_the_users: bool) -> tuple[subprocess.CompletedProcess[str], Path]:
    home_cache = tmp_path / "home-cache"
    fake_cache(home_cache / "models")
    work = tmp_path / "inner"
    work.mkdir()
    (work / "conftest.py").write_text('pytest_plugins = ["testbed.model_cache"]\n')
    (work / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if k not in (MODEL_DIR_ENV, "KUBEINFER_TEST_MODEL_SOURCE")}
    env |= {
        "KUBEINFER_CACHE_DIR": str(home_cache),
        "USER_MODELS": str(home_cache / "models"),
        "PYTHONPATH": str(ROOT),
        "ALSO_WRITE_THE_USERS": "1" if also_write_the_users else "",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, home_cache / "models"


def test_a_session_that_writes_only_its_own_cache_leaves_the_users_unchanged(tmp_path: Path) -> None:
    proc, user_models = inner_session(tmp_path / "a", also_write_the_users=False)
    listing = json.dumps(sorted(snapshot(user_models)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "user model cache changed" not in proc.stdout
    assert listing == json.dumps(["m/.m.Q8_0.gguf.partial", "m/m.Q4_0.gguf", "m/m.Q4_0.gguf.json"])


def test_a_session_that_writes_the_users_cache_fails_naming_the_file(tmp_path: Path) -> None:
    proc, user_models = inner_session(tmp_path / "b", also_write_the_users=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert f"the test session changed the user's model cache {user_models}:" in proc.stdout
    assert "added m/stray.gguf" in proc.stdout
    assert "m.Q8_0.gguf" not in proc.stdout.split("user model cache changed")[1]
