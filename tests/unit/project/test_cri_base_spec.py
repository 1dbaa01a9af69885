"""hack/kind/cri_base_spec.py: the node image's containerd base spec from `ctr oci spec` on standard input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "kind" / "cri_base_spec.py"


def run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT)], input=stdin, capture_output=True, text=True, check=False)


def test_kinds_hook_is_added_and_the_default_rlimits_dropped() -> None:
    spec = {"ociVersion": "1.1.0", "process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE"}]}}
    done = run(json.dumps(spec))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "rlimits" not in out["process"]
    assert out["hooks"]["createContainer"] == [{"path": "/kind/bin/mount-product-files.sh"}]


@pytest.mark.parametrize("stdin", ["", "not json", "[]", '{"ociVersion": "1.1.0"}'])
def test_anything_but_a_spec_is_a_one_line_error(stdin: str) -> None:
    done = run(stdin)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("cri_base_spec.py: standard input is not the OCI spec `ctr oci spec` prints")
    assert "Traceback" not in done.stderr
