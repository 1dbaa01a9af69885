#!/usr/bin/env bash
# Install Label Studio from PyPI into its own virtualenv, cached outside the checkout by version.
# Label Studio pins many packages (Django, numpy, boto, ...) that must not meet kubeinfer's own .venv, so it
# gets a venv of its own at $KUBEINFER_CACHE_DIR/label-studio/<version>/venv. The tests start it from there.
# Idempotent: returns at once when that version is already installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pip_venv.sh"

VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
pip_venv_init label-studio "$VERSION"
pip_venv_exit_if_present label-studio

pip_venv_create 3.10-3.12 "" "label-studio==$VERSION"
# `label-studio --version` would start a server, so the import is the check.
pip_venv_check_version label_studio 'import label_studio; print(label_studio.__version__)'
pip_venv_mark_installed
