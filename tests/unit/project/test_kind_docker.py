"""The kind scripts' Docker path against a stand-in `docker` that refuses what Docker 20.10 refuses.

Found by running `KUBEINFER_OFFLINE=1 make kind-up` with Debian's Docker 20.10 (docs/kind.md, "Docker users"):
  - `docker build DIR` reads only DIR/Dockerfile ("unable to evaluate symlinks in Dockerfile path"), never a
    Containerfile: node-image.sh names its file with -f;
  - `docker commit --change` takes no STOPSIGNAL ("stopsignal is not a valid change command"): the node image gets
    its stop signal from a build on top of the commit;
  - `docker build` mounts no files, so pip behind a TLS-intercepting proxy cannot see the host's CA bundle: with
    Docker it is copied into a base image of the build's own, and PIP_CERT points there.
The same stand-in, as `podman`, accepts everything and records the calls, so the podman path is pinned as it was.
No Docker runs here: the scripts (or their functions) run against the stand-in, which records every call. A real
daemon is not started in the suite because the scripts pick Docker whenever one answers (every kind test of the
session would switch provider) and this sandbox's privileged containers need a runtime workaround; the real run,
with its figures, is in docs/kind.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

HACK_KIND = Path(__file__).resolve().parents[3] / "hack" / "kind"
BUILD_CA = "/usr/local/share/kubeinfer/build-ca.crt"

ENGINE = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
call = {"args": args}
code, error = 0, ""
if args[:2] == ["image", "inspect"]:
    code = 1  # no image exists yet
elif args[0] == "build":
    dockerfile = Path(args[args.index("-f") + 1]) if "-f" in args else None
    context = Path(args[-1])
    if dockerfile is None:
        names = ["Dockerfile"] if ENGINE_NAME == "docker" else ["Containerfile", "Dockerfile"]
        dockerfile = next((context / n for n in names if (context / n).exists()), context / names[0])
    if not dockerfile.exists():
        code = 1
        error = f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {dockerfile}"
    else:
        call["dockerfile"] = dockerfile.read_text()
        call["context"] = {p.name: p.read_text() for p in context.iterdir() if p.is_file()}
elif args[0] == "commit":
    changes = [args[i + 1] for i, a in enumerate(args) if a == "--change"]
    if ENGINE_NAME == "docker" and any(c.upper().startswith("STOPSIGNAL") for c in changes):
        code, error = 1, "Error response from daemon: stopsignal is not a valid change command"
elif args[0] == "save":
    if ENGINE_NAME == "docker" and "--format" in args:
        code, error = 125, "unknown flag: --format"
    else:
        Path(args[args.index("-o") + 1]).write_text("archive")
call["rc"] = code
with open(os.environ["ENGINE_CALLS"], "a") as log:
    log.write(json.dumps(call) + "\\n")
if error:
    print(error, file=sys.stderr)
sys.exit(code)
"""


def executable(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def stand_in(tmp_path: Path, name: str) -> dict[str, str]:
    """A `docker` or `podman` on PATH that records its calls; the environment to run a script with it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    executable(bin_dir / name, f"#!{sys.executable}\nENGINE_NAME = {name!r}\n{ENGINE}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIND_", "PIP_", "SSL_", "KUBEINFER_"))}
    return env | {
        "PATH": f"{bin_dir}:{env['PATH']}",
        "KIND_PROVIDER": name,
        "ENGINE_CALLS": str(tmp_path / "calls.jsonl"),
        "KUBEINFER_CACHE_DIR": str(tmp_path / "cache"),
    }


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_images(tmp_path: Path, engine: str, **env: str) -> subprocess.CompletedProcess[str]:
    """hack/kind/images.sh in a copy of hack/kind whose rootfs.sh is a stand-in (no debootstrap)."""
    kind_dir = tmp_path / "repo" / "hack" / "kind"
    kind_dir.mkdir(parents=True)
    for script in ("images.sh", "common.sh"):
        shutil.copy(HACK_KIND / script, kind_dir / script)
    (tmp_path / "repo" / "images").mkdir()
    (tmp_path / "repo" / "images" / "Dockerfile").write_text("ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\n")
    rootfs = tmp_path / "base-bookworm-0123456789abcdef.tar"
    rootfs.write_text("rootfs")
    executable(kind_dir / "rootfs.sh", f"#!/usr/bin/env bash\necho {rootfs}\n")
    return subprocess.run(
        ["bash", str(kind_dir / "images.sh"), "kubeinfer=ghcr.io/kubeinfer/kubeinfer:0.1.0@images/Dockerfile"],
        env=stand_in(tmp_path, engine) | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def image_build(tmp_path: Path) -> list[str]:
    (build,) = [c["args"] for c in calls(tmp_path) if c["args"][0] == "build" and "--target" in c["args"]]
    return build


def test_docker_builds_get_the_ca_bundle_from_a_base_image_of_their_own(tmp_path: Path) -> None:
    ca = tmp_path / "proxy-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----\n")
    done = run_images(tmp_path, "docker", KUBEINFER_OFFLINE="1", PIP_CERT=str(ca))
    assert done.returncode == 0, done.stderr
    (ca_build,) = [c for c in calls(tmp_path) if c["args"][0] == "build" and "--target" not in c["args"]]
    debian_base = "localhost/kubeinfer/debian-base:bookworm-0123456789abcdef"
    assert ca_build["dockerfile"] == f"FROM {debian_base}\nCOPY ca.crt {BUILD_CA}\n"
    assert ca_build["context"]["ca.crt"] == ca.read_text()
    ca_base = ca_build["args"][ca_build["args"].index("-t") + 1]
    assert ca_base.startswith("localhost/kubeinfer/build-base:")
    build = image_build(tmp_path)
    assert f"PYTHON_IMAGE={ca_base}" in build
    assert f"PIP_CERT={BUILD_CA}" in build
    assert "-v" not in build
    assert (tmp_path / "cache" / "images").is_dir()
    assert len(list((tmp_path / "cache" / "images").glob("kubeinfer-*.tar"))) == 1


def test_docker_without_a_ca_bundle_builds_from_the_base_itself(tmp_path: Path) -> None:
    done = run_images(tmp_path, "docker")
    assert done.returncode == 0, done.stderr
    assert [c["args"][0] for c in calls(tmp_path)] == ["build", "save", "save"]  # no base of its own
    build = image_build(tmp_path)
    assert not any(a.startswith(("PIP_CERT=", "PYTHON_IMAGE=")) for a in build)  # the Dockerfile's python image


def test_podman_builds_mount_the_ca_bundle_as_before(tmp_path: Path) -> None:
    ca = tmp_path / "proxy-ca.crt"
    ca.write_text("proxy")
    done = run_images(tmp_path, "podman", SSL_CERT_FILE=str(ca))
    assert done.returncode == 0, done.stderr
    builds = [c["args"] for c in calls(tmp_path) if c["args"][0] == "build"]
    assert len(builds) == 1
    (build,) = builds
    base = "localhost/kubeinfer/debian-base:bookworm-0123456789abcdef"
    options = build[: build.index("-f")]
    assert options == [
        "build",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-arg",
        f"PIP_CERT={ca}",
        "-v",
        f"{ca}:{ca}:ro",
        "--layers",
        "--network",
        "host",
    ]


def shell_function(script: str, name: str) -> str:
    match = re.search(rf"^{name}\(\) {{.*?^}}$", (HACK_KIND / script).read_text(), re.M | re.S)
    assert match, f"{name} not found in {script}"
    return match.group(0)


def run_function(tmp_path: Path, engine: str, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\nENGINE={engine}\n{body}"],
        env=stand_in(tmp_path, engine),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def commit_node(tmp_path: Path) -> str:
    return shell_function("node-image.sh", "commit_node") + f"\ncommit_node node:1 staging:1 {tmp_path}/stop"


def test_node_image_commit_on_docker_sets_the_stop_signal_with_a_build(tmp_path: Path) -> None:
    done = run_function(tmp_path, "docker", commit_node(tmp_path))
    assert done.returncode == 0, done.stderr
    commit, build = calls(tmp_path)
    assert commit["args"][0] == "commit"
    assert commit["args"][-2:] == ["kubeinfer-node-build", "staging:1"]
    assert 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' in commit["args"]
    assert "ENV container=docker" in commit["args"]
    assert build["dockerfile"] == "FROM staging:1\nSTOPSIGNAL SIGRTMIN+3\n"
    assert build["args"][build["args"].index("-t") + 1] == "node:1"


def test_node_image_commit_on_podman_is_one_commit_as_before(tmp_path: Path) -> None:
    done = run_function(tmp_path, "podman", commit_node(tmp_path))
    assert done.returncode == 0, done.stderr
    (commit,) = calls(tmp_path)
    assert commit["args"] == [
        "commit",
        "--change",
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
        "--change",
        "ENV container=docker",
        "--change",
        "STOPSIGNAL SIGRTMIN+3",
        "kubeinfer-node-build",
        "node:1",
    ]


def test_component_images_build_on_docker_from_their_containerfiles(tmp_path: Path) -> None:
    binary = tmp_path / "coredns"
    binary.write_text("binary")
    body = "\n".join(
        [
            f"component_images() {{ echo 'registry.k8s.io/coredns/coredns:v1.13.1 {binary} coredns'; }}",
            shell_function("node-image.sh", "build_component_images"),
            f"build_component_images base:1 {tmp_path}/images.tar",
        ]
    )
    done = run_function(tmp_path, "docker", body)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["registry.k8s.io/coredns/coredns:v1.13.1"]
    build, save = calls(tmp_path)
    assert build["dockerfile"] == 'FROM scratch\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n'
    assert save["args"] == ["save", "-o", f"{tmp_path}/images.tar", "registry.k8s.io/coredns/coredns:v1.13.1"]
