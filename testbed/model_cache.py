"""The test session's model cache: a temporary one, seeded from the user's, which the session leaves as it was.

A pytest plugin (tests/conftest.py loads it). At configure time it makes a temporary model cache, fills it with
hard links to every verified GGUF of a source cache (copies across file systems) and points
`KUBEINFER_MODEL_DIR` at it, so every `Settings()` of the session, in-process or in a child process (the CLI, a
gateway, a `bench run`), fetches, derives and records there. The source is `KUBEINFER_TEST_MODEL_SOURCE` when
set, else the user's model cache (what `Settings().models_root` was before). The cache code only ever replaces
files (`os.replace`), never writes into one, so a linked file cannot change the user's copy; at the end of the
session the user's model cache is compared with a listing taken at the start (paths, sizes, mtimes; lock files
left out, they hold no data) and the session fails, naming every difference, when it changed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kubeinfer.models.cache import ModelCache
from kubeinfer.settings import Settings

SOURCE_ENV = "KUBEINFER_TEST_MODEL_SOURCE"
MODEL_DIR_ENV = "KUBEINFER_MODEL_DIR"

Snapshot = dict[str, tuple[int, int]]

_STATE = pytest.StashKey[tuple[Path, Path, Snapshot, str | None]]()


def link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, dest)


def seed(source: Path, target: Path) -> list[Path]:
    """Link every verified file of the cache at `source` (its GGUF; its sidecar copied) into the one at `target`.

    Verified as the cache itself judges it (a sidecar whose size matches the file): partial downloads, lock
    files and fetched wheels stay behind. Returns the seeded GGUF paths under `target`.
    """
    seeded = []
    for cached in ModelCache(source).list():
        dest = target / cached.path.relative_to(source)
        link_or_copy(cached.path, dest)
        sidecar = cached.path.with_name(cached.path.name + ".json")
        shutil.copy2(sidecar, dest.with_name(dest.name + ".json"))
        seeded.append(dest)
    return seeded


def snapshot(root: Path) -> Snapshot:
    """Relative path -> (size, mtime in ns) of every file under `root`, lock files left out."""
    if not root.is_dir():
        return {}
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock"):
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs between two snapshots of one folder, one line per file."""
    lines = [f"added {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    lines += [
        f"changed {p} (size {before[p][0]} -> {after[p][0]}, mtime {before[p][1]} -> {after[p][1]})"
        for p in sorted(before.keys() & after.keys())
        if before[p] != after[p]
    ]
    return lines


def user_models_root(config: pytest.Config) -> Path:
    """The model cache the user's own commands use, as it was before this session redirected it."""
    return config.stash[_STATE][0]


def pytest_configure(config: pytest.Config) -> None:
    user_root = Settings().models_root
    source = Path(os.environ[SOURCE_ENV]) if os.environ.get(SOURCE_ENV) else user_root
    session_root = Path(tempfile.mkdtemp(prefix="kubeinfer-test-models-"))
    seed(source, session_root)
    config.stash[_STATE] = (user_root, session_root, snapshot(user_root), os.environ.get(MODEL_DIR_ENV))
    os.environ[MODEL_DIR_ENV] = str(session_root)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    user_root, _, before, _ = session.config.stash[_STATE]
    changed = changes(before, snapshot(user_root))
    if not changed:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = [f"the test session changed the user's model cache {user_root}:", *(f"  {line}" for line in changed)]
    if reporter is not None:
        reporter.write_sep("=", "user model cache changed", red=True)
        for line in message:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    _, session_root, _, previous = state
    if previous is None:
        os.environ.pop(MODEL_DIR_ENV, None)
    else:
        os.environ[MODEL_DIR_ENV] = previous
    shutil.rmtree(session_root, ignore_errors=True)
