"""The images' Dockerfiles, checked without Docker (none runs here): entry points, tags, versions, user.

`make -n images` gives the exact targets, tags and Dockerfiles, so the tags checked are the ones `make images`
builds; they must equal OperatorSettings' defaults and the chart's values, or the operator would start pods
with images nobody built.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kubeinfer.engines.llamacpp_build import SDIST_VERSION
from kubeinfer.settings import OperatorSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "kubeinfer"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@dataclass
class Stage:
    name: str
    base: str
    args: dict[str, str] = field(default_factory=dict)
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [rest for kw, rest in self.instructions if kw == keyword]
        return found[-1] if found else None


def parse_dockerfile(path: Path) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARGs and stages by name; continuation lines joined, heredoc bodies skipped."""
    lines = path.read_text().splitlines()
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if heredoc := re.search(r"<<-?([A-Z]+)", rest):
            while i < len(lines) and lines[i].strip() != heredoc[1]:
                i += 1
            i += 1
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            current = Stage(name=name.strip() or f"stage{len(stages)}", base=base.strip())
            stages[current.name] = current
        elif keyword == "ARG":
            key, _, value = rest.partition("=")
            (current.args if current else global_args)[key.strip()] = value.strip().strip('"')
        elif current is not None:
            current.instructions.append((keyword, rest))
    return global_args, stages


def exec_form(value: str | None) -> list[str]:
    assert value is not None
    parsed = yaml.safe_load(value)
    assert isinstance(parsed, list), f"not exec form: {value}"
    return [str(v) for v in parsed]


@dataclass(frozen=True)
class Build:
    dockerfile: Path
    target: str
    tag: str


def make_images_builds() -> list[Build]:
    """The images `make images` would build (all three), read from the `TARGET=TAG@DOCKERFILE` specs of `make -n`."""
    out = subprocess.run(
        ["make", "-s", "-n", "images", "IMAGES=kubeinfer llama-server llama-server-cuda"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = shlex.split(out)
    assert words[0] == "hack/kind/images.sh", out
    builds = []
    for spec in words[1:]:
        target, _, rest = spec.partition("=")
        tag, _, dockerfile = rest.rpartition("@")
        builds.append(Build(REPO_ROOT / dockerfile, target, tag))
    return builds


BUILDS = make_images_builds()


def test_make_images_builds_the_three_images() -> None:
    assert sorted(b.target for b in BUILDS) == ["kubeinfer", "llama-server", "llama-server-cuda"]


def test_image_tags_match_operator_settings_and_chart_values() -> None:
    tags = {b.target: b.tag for b in BUILDS}
    defaults = OperatorSettings()
    assert tags["kubeinfer"] == defaults.runner_image
    assert tags["llama-server"] == defaults.engine_image
    assert tags["llama-server-cuda"] == defaults.engine_gpu_image
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = values["image"]
    assert f"{image['repository']}:{image['tag'] or chart['appVersion']}" == tags["kubeinfer"]
    assert values["engineImages"]["cpu"] == tags["llama-server"]
    assert values["engineImages"]["gpu"] == tags["llama-server-cuda"]
    assert values["engineImages"]["vllm"] == defaults.vllm_image
    assert chart["appVersion"] == PYPROJECT["project"]["version"]


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.target)
def test_entrypoint_is_a_console_script_or_llama_server(build: Build) -> None:
    _, stages = parse_dockerfile(build.dockerfile)
    stage = stages[build.target]
    entrypoint = exec_form(stage.last("ENTRYPOINT"))
    scripts = set(PYPROJECT["project"]["scripts"])
    assert entrypoint[0] in scripts | {"llama-server"}
    if "llama" in build.target:
        assert entrypoint == ["llama-server"]
    else:
        assert entrypoint == ["kubeinfer"]


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.target)
def test_images_run_as_the_non_root_user_the_chart_expects(build: Build) -> None:
    _, stages = parse_dockerfile(build.dockerfile)
    user = stages[build.target].last("USER")
    values = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert user == f"{values['runAsUser']}:{values['runAsGroup']}"


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.target)
def test_images_carry_the_kubeinfer_package_installed_with_its_operator_extra(build: Build) -> None:
    """Server pods run `kubeinfer engine serve -- llama-server ...`, so the llama images need the package too."""
    _, stages = parse_dockerfile(build.dockerfile)
    installs = [
        rest
        for stage in stages.values()
        for kw, rest in stage.instructions
        if kw == "RUN" and re.search(r"pip install '\.\[operator\]'", rest)
    ]
    assert installs
    env = " ".join(rest for stage in stages.values() for kw, rest in stage.instructions if kw == "ENV")
    assert "/opt/kubeinfer/venv/bin" in env


@pytest.mark.parametrize("dockerfile", sorted({b.dockerfile for b in BUILDS}), ids=lambda p: p.name)
def test_engine_version_is_the_pinned_sdist_and_the_tag(dockerfile: Path) -> None:
    global_args, _ = parse_dockerfile(dockerfile)
    assert global_args["ENGINE_VERSION"] == SDIST_VERSION
    for build in BUILDS:
        if "llama" in build.target:
            assert build.tag.endswith(f":{SDIST_VERSION}")


def test_cuda_image_builds_from_an_nvidia_cuda_devel_base() -> None:
    (build,) = [b for b in BUILDS if b.target == "llama-server-cuda"]
    _, stages = parse_dockerfile(build.dockerfile)
    assert any(s.base.startswith("nvidia/cuda:") and "-devel-" in s.base for s in stages.values())
    assert stages[build.target].base.startswith("nvidia/cuda:")
    assert "GGML_CUDA" in build.dockerfile.read_text()


def test_the_cpu_images_build_offline_with_buildkit_no_frontend_to_fetch() -> None:
    """A `# syntax=` line makes BuildKit fetch that frontend from Docker Hub, which an offline build cannot."""
    first = (REPO_ROOT / "images" / "Dockerfile").read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE), first
