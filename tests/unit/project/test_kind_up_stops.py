"""`hack/kind/cluster.sh up` stops when an image fails to build, before it creates a cluster.

The failure once went unnoticed: the build ran inside `$(...)`, where bash's errexit is off, and the script went on
to create the cluster and load stale archives. Here the real cluster.sh, common.sh and bridge.sh run in a copy of
hack/kind whose tool installer, image builder and kind are stand-ins: the builder fails as `podman build` would,
and the stand-in kind records every call it gets, so the test sees that none came.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

HACK_KIND = Path(__file__).resolve().parents[3] / "hack" / "kind"


def executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_failed_image_build_stops_up_before_any_kind_call(tmp_path: Path) -> None:
    kind_dir = tmp_path / "repo" / "hack" / "kind"
    kind_dir.mkdir(parents=True)
    for script in ("cluster.sh", "common.sh", "bridge.sh"):
        shutil.copy(HACK_KIND / script, kind_dir / script)
    executable(kind_dir / "install.sh", "exit 0\n")
    executable(kind_dir / "images.sh", 'echo "Error: building at STEP \\"RUN make\\": exit status 2" >&2\nexit 2\n')
    calls = tmp_path / "kind-calls"
    executable(tmp_path / "kind", f'echo "$*" >> {calls}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIND_")}
    env |= {
        "KIND": str(tmp_path / "kind"),
        "KIND_PROVIDER": "podman",
        "KIND_STATE_DIR": str(tmp_path / "state"),
        "KIND_CLUSTER": "kubeinfer-stop-test",
        "KUBEINFER_CACHE_DIR": str(tmp_path / "cache"),
        "IMAGES": "kubeinfer=ghcr.io/kubeinfer/kubeinfer:0.1.0@images/Dockerfile",
    }
    done = subprocess.run(
        ["bash", str(kind_dir / "cluster.sh"), "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0, done.stderr
    assert 'building at STEP "RUN make"' in done.stderr
    assert not calls.exists(), calls.read_text()
