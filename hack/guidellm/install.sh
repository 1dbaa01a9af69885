#!/usr/bin/env bash
# Install GuideLLM from PyPI into its own virtualenv, cached outside the checkout by version.
# GuideLLM pulls torch, transformers and datasets, which must not meet kubeinfer's own .venv, so it gets a venv of
# its own at $KUBEINFER_CACHE_DIR/guidellm/<version>/venv; perf/guidellm_compare.py runs it from there. `gguf` goes in
# too: transformers needs it to read the model's tokenizer from the GGUF file (GuideLLM sizes its prompts with it).
# GUIDELLM_BIN, when set, names an existing guidellm and skips the install. Idempotent: returns at once when that
# version is already installed.
set -euo pipefail

CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
VERSION="${GUIDELLM_VERSION:-0.8.1}"
GGUF_VERSION="${GGUF_VERSION:-0.19.0}"
PYTHON="${PYTHON:-python3}"
ROOT="$CACHE_DIR/guidellm/$VERSION"
VENV="$ROOT/venv"

log() { printf '[guidellm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -n "${GUIDELLM_BIN:-}" ]]; then
  [[ -x "$GUIDELLM_BIN" ]] || die "GUIDELLM_BIN=$GUIDELLM_BIN is not executable"
  log "using GUIDELLM_BIN=$GUIDELLM_BIN"
  exit 0
fi
if [[ -x "$VENV/bin/guidellm" ]] && grep -qs "gguf==$GGUF_VERSION" "$ROOT/.installed"; then
  log "present in $VENV ($(cat "$ROOT/.installed"))"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: set PYTHON to a Python 3.10-3.13 interpreter"
start=$SECONDS
rm -rf "$VENV"
mkdir -p "$ROOT"
log "creating $VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
log "pip install guidellm==$VERSION gguf==$GGUF_VERSION (torch and its CUDA wheels included: about 6 GB, once)"
"$VENV/bin/pip" install --quiet "guidellm==$VERSION" "gguf==$GGUF_VERSION" \
  || die "pip install guidellm==$VERSION gguf==$GGUF_VERSION failed (see above)"
installed="$("$VENV/bin/python" -c 'import gguf, guidellm; from importlib.metadata import version; print(version("guidellm"))')" \
  || die "guidellm or gguf does not import in $VENV"
[[ "$installed" == "$VERSION" ]] || die "pip installed guidellm $installed, not $VERSION"
"$VENV/bin/guidellm" --help >/dev/null || die "$VENV/bin/guidellm --help failed"
elapsed=$((SECONDS - start))
printf 'guidellm==%s gguf==%s installed in %s s\n' "$VERSION" "$GGUF_VERSION" "$elapsed" > "$ROOT/.installed"
log "guidellm $VERSION in $VENV: $elapsed s"
