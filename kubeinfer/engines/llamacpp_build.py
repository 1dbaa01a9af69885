"""Build the upstream llama.cpp tools from the sources vendored in a PyPI sdist, cached by version.

The sdist of `llama-cpp-python` carries the full llama.cpp tree under `vendor/llama.cpp`. Only
`llama-server`, `llama-bench` and `llama-quantize` are built, statically, so the binaries can be copied
into an image or a pod's volume without their shared libraries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kubeinfer.engines.cpu import cpu_flags, ggml_isa_options
from kubeinfer.filelock import exclusive

SDIST_PACKAGE = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
TARGETS = ("llama-server", "llama-bench", "llama-quantize")


class EngineBuildError(RuntimeError):
    """The engine could not be fetched or built; the message says which step failed."""


@dataclass(frozen=True)
class EngineInstall:
    version: str
    llama_server: Path
    llama_bench: Path
    llama_quantize: Path
    build_options: dict[str, bool]

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def install_dir(root: Path, version: str = SDIST_VERSION) -> Path:
    return root / version


def find_installed(root: Path, version: str = SDIST_VERSION) -> EngineInstall | None:
    """The cached install for `version`, or None when it is missing or was built for other CPU flags."""
    target = install_dir(root, version)
    manifest = target / "build.json"
    if not manifest.is_file():
        return None
    recorded = json.loads(manifest.read_text())
    wanted = ggml_isa_options(cpu_flags())
    if recorded.get("build_options") != wanted:
        return None
    binaries = {name: target / "bin" / name for name in TARGETS}
    if not all(os.access(path, os.X_OK) for path in binaries.values()):
        return None
    return EngineInstall(
        version=version,
        llama_server=binaries["llama-server"],
        llama_bench=binaries["llama-bench"],
        llama_quantize=binaries["llama-quantize"],
        build_options=wanted,
    )


def _run(cmd: list[str], step: str, log: Callable[[str], None], cwd: Path | None = None) -> None:
    log(f"{step}: {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise EngineBuildError(f"{step} failed (exit {proc.returncode}):\n{tail}")


def fetch_sdist(dest: Path, log: Callable[[str], None], version: str = SDIST_VERSION) -> Path:
    """Download the sdist with pip (no dependencies, source only) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if existing:
        return existing[0]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{SDIST_PACKAGE}=={version}",
            "-d",
            str(dest),
        ],
        "download sdist",
        log,
    )
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise EngineBuildError(f"pip download did not produce llama_cpp_python-{version}.tar.gz in {dest}")
    return found[0]


def cmake_options(isa: dict[str, bool]) -> list[str]:
    fixed = {
        "CMAKE_BUILD_TYPE": "Release",
        "BUILD_SHARED_LIBS": "OFF",
        "LLAMA_BUILD_TESTS": "OFF",
        "LLAMA_BUILD_EXAMPLES": "OFF",
        "LLAMA_BUILD_TOOLS": "ON",
        "LLAMA_BUILD_SERVER": "ON",
        "LLAMA_BUILD_UI": "OFF",
        "LLAMA_USE_PREBUILT_UI": "OFF",
        "LLAMA_OPENSSL": "OFF",
        "GGML_OPENMP": "OFF",
    }
    merged = {**fixed, **{k: "ON" if v else "OFF" for k, v in isa.items()}}
    return [f"-D{k}={v}" for k, v in merged.items()]


def _extract(archive: tarfile.TarFile, dest: Path, members: list[tarfile.TarInfo]) -> None:
    """Extract with the "data" filter where Python has it (3.11.4+; Debian bookworm's 3.11.2 does not)."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, members=members, filter="data")
        return
    root = dest.resolve()
    for member in members:
        path = (dest / member.name).resolve()
        target = (path.parent / member.linkname).resolve() if member.issym() else path
        if not (member.isfile() or member.isdir() or member.issym()) or not (
            path.is_relative_to(root) and target.is_relative_to(root)
        ):
            raise EngineBuildError(f"refusing to extract {member.name!r} from the sdist")
    archive.extractall(dest, members=members)  # noqa: S202 (every member checked above)


def build(
    root: Path,
    jobs: int = 0,
    log: Callable[[str], None] = print,
    version: str = SDIST_VERSION,
    force: bool = False,
) -> EngineInstall:
    """Build and cache the engine; a second call with a valid cache returns at once."""
    with exclusive(root / f".{version}.lock"):
        if not force and (found := find_installed(root, version)) is not None:
            log(f"llama.cpp {version} already installed at {found.llama_server.parent}")
            return found
        isa = ggml_isa_options(cpu_flags())
        sdist = fetch_sdist(root / "sdist", log, version)
        with tempfile.TemporaryDirectory(prefix="kubeinfer-llamacpp-") as tmp:
            work = Path(tmp)
            log(f"extract {sdist.name}")
            with tarfile.open(sdist) as archive:
                members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
                _extract(archive, work, members)
            source = next(work.glob("*/vendor/llama.cpp"))
            build_dir = work / "build"
            _run(
                ["cmake", "-S", str(source), "-B", str(build_dir), "-G", "Ninja", *cmake_options(isa)],
                "configure",
                log,
            )
            parallel = str(jobs or os.cpu_count() or 1)
            _run(
                ["cmake", "--build", str(build_dir), "--parallel", parallel, "--target", *TARGETS],
                "compile",
                log,
            )
            target = install_dir(root, version)
            staging = root / f".{version}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "bin").mkdir(parents=True)
            for name in TARGETS:
                shutil.copy2(build_dir / "bin" / name, staging / "bin" / name)
            (staging / "build.json").write_text(json.dumps({"version": version, "build_options": isa}, indent=2))
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        installed = find_installed(root, version)
        if installed is None:
            raise EngineBuildError(f"build finished but {target} does not hold runnable binaries")
        return installed
