#!/usr/bin/env bash
# Install GuideLLM from PyPI into its own virtualenv, cached outside the checkout by version.
# GuideLLM pulls torch, transformers and datasets, which must not meet kubeinfer's own .venv, so it gets a venv of
# its own at $KUBEINFER_CACHE_DIR/guidellm/<version>/venv; perf/guidellm_compare.py runs it from there. `gguf` goes in
# too: transformers needs it to read the model's tokenizer from the GGUF file (GuideLLM sizes its prompts with it).
# GUIDELLM_BIN, when set, names an existing guidellm and skips the install. Idempotent: returns at once when that
# version is already installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pip_venv.sh"

VERSION="${GUIDELLM_VERSION:-0.8.1}"
GGUF_VERSION="${GGUF_VERSION:-0.19.0}"
pip_venv_init guidellm "$VERSION"

if [[ -n "${GUIDELLM_BIN:-}" ]]; then
  [[ -x "$GUIDELLM_BIN" ]] || die "GUIDELLM_BIN=$GUIDELLM_BIN is not executable"
  log "using GUIDELLM_BIN=$GUIDELLM_BIN"
  exit 0
fi
pip_venv_exit_if_present guidellm "gguf==$GGUF_VERSION"

pip_venv_create 3.10-3.13 "torch and its CUDA wheels included: about 6 GB, once" \
  "guidellm==$VERSION" "gguf==$GGUF_VERSION"
pip_venv_check_version "guidellm or gguf" \
  'import gguf, guidellm; from importlib.metadata import version; print(version("guidellm"))'
"$VENV/bin/guidellm" --help >/dev/null || die "$VENV/bin/guidellm --help failed"
pip_venv_mark_installed
