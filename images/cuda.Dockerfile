# syntax=docker/dockerfile:1.7
# kubeinfer's llama.cpp CUDA server image, from the repository root (`make images`): llama-server,
# llama-bench and llama-quantize built with GGML_CUDA from the llama.cpp tree vendored in the pinned
# llama-cpp-python sdist (the same sdist and CMake options as kubeinfer/engines/llamacpp_build.py, plus CUDA),
# and the kubeinfer package, so a server pod can run `kubeinfer engine serve -- <llama-server args>`.
# GPU pods get libcuda from the NVIDIA container toolkit; CUDA_ARCHITECTURES picks the GPUs to compile for.

ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04
# Must equal kubeinfer.engines.llamacpp_build.SDIST_VERSION (a unit test checks it) and the image's tag.
ARG ENGINE_VERSION=0.3.36

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build
ARG ENGINE_VERSION
# 75 T4, 80 A100, 86 A10/RTX 30, 89 L4/L40/RTX 40, 90 H100/H200.
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv build-essential cmake ninja-build ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/kubeinfer/venv
ENV PATH=/opt/kubeinfer/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubeinfer ./kubeinfer
RUN pip install '.[operator]'
# The CPU parts of ggml get a portable baseline (AVX2, FMA, F16C): the GPU does the heavy lifting, and the
# image must run on whatever x86-64 host carries the GPU.
RUN <<PY python
import subprocess, tarfile
from pathlib import Path
from kubeinfer.engines.llamacpp_build import TARGETS, cmake_options, fetch_sdist

sdist = fetch_sdist(Path("/src/sdist"), print, "${ENGINE_VERSION}")
with tarfile.open(sdist) as archive:
    members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
    archive.extractall("/src/llama", members=members, filter="data")
source = next(Path("/src/llama").glob("*/vendor/llama.cpp"))
isa = {"GGML_NATIVE": False, "GGML_AVX": True, "GGML_AVX2": True, "GGML_FMA": True, "GGML_F16C": True,
       "GGML_CUDA": True}
# libcuda comes from the driver at run time; at link time only the toolkit's stub is there.
options = cmake_options(isa) + [
    "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}",
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined",
]
subprocess.run(["cmake", "-S", str(source), "-B", "/src/build", "-G", "Ninja", *options], check=True)
subprocess.run(["cmake", "--build", "/src/build", "--parallel", "--target", *TARGETS], check=True)
out = Path("/opt/kubeinfer/engine/${ENGINE_VERSION}/bin")
out.mkdir(parents=True)
for name in TARGETS:
    (out / name).write_bytes(Path("/src/build/bin", name).read_bytes())
    (out / name).chmod(0o755)
PY

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS llama-server-cuda
ARG ENGINE_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kubeinfer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin kubeinfer
COPY --from=build /opt/kubeinfer /opt/kubeinfer
ENV PATH=/opt/kubeinfer/engine/${ENGINE_VERSION}/bin:/opt/kubeinfer/venv/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    KUBEINFER_ENGINE_DIR=/opt/kubeinfer/engine \
    KUBEINFER_CACHE_DIR=/tmp/kubeinfer \
    KUBEINFER_MODEL_DIR=/models \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["llama-server"]
CMD ["--help"]
