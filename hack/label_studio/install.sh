#!/usr/bin/env bash
# Install Label Studio from PyPI into its own virtualenv, cached outside the checkout by version.
# Label Studio pins many packages (Django, numpy, boto, ...) that must not meet kubeinfer's own .venv, so it
# gets a venv of its own at $KUBEINFER_CACHE_DIR/label-studio/<version>/venv. The tests start it from there.
# Idempotent: returns at once when that version is already installed.
set -euo pipefail

CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
PYTHON="${PYTHON:-python3}"
ROOT="$CACHE_DIR/label-studio/$VERSION"
VENV="$ROOT/venv"

log() { printf '[label-studio] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -x "$VENV/bin/label-studio" && -f "$ROOT/.installed" ]]; then
  log "present in $VENV ($(cat "$ROOT/.installed"))"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: set PYTHON to a Python 3.10-3.12 interpreter"
start=$SECONDS
rm -rf "$VENV"
mkdir -p "$ROOT"
log "creating $VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
log "pip install label-studio==$VERSION"
"$VENV/bin/pip" install --quiet "label-studio==$VERSION" || die "pip install label-studio==$VERSION failed (see above)"
# `label-studio --version` would start a server, so the import is the check.
installed="$("$VENV/bin/python" -c 'import label_studio; print(label_studio.__version__)')" \
  || die "label_studio does not import in $VENV"
[[ "$installed" == "$VERSION" ]] || die "pip installed label-studio $installed, not $VERSION"
elapsed=$((SECONDS - start))
printf 'label-studio==%s installed in %s s\n' "$VERSION" "$elapsed" > "$ROOT/.installed"
log "label-studio $VERSION in $VENV: $elapsed s"
