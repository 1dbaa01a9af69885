# Sourced by the install scripts of the Python tools that must not meet kubeinfer's own .venv (hack/guidellm,
# hack/label_studio): each tool gets a venv of its own at $KUBEINFER_CACHE_DIR/<tool>/<version>/venv, made once per
# version and stamped with a .installed file. An install script calls, in this order:
#   pip_venv_init TOOL VERSION          sets ROOT and VENV, and log/die with the "[TOOL]" prefix
#   pip_venv_exit_if_present EXE [MARK] exits 0 when that version is already installed
#   pip_venv_create PYTHONS NOTE PKG... a fresh venv with PKG... pip-installed
#   pip_venv_check_version MODULES CODE dies unless CODE, run in the venv, prints VERSION
#   pip_venv_mark_installed             writes the stamp and logs the time taken
# PYTHON (default python3) is the interpreter the venv is made from.

pip_venv_init() {
  PIP_VENV_TOOL="$1"
  PIP_VENV_VERSION="$2"
  ROOT="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}/$PIP_VENV_TOOL/$PIP_VENV_VERSION"
  VENV="$ROOT/venv"
  PYTHON="${PYTHON:-python3}"
}

log() { printf '[%s] %s\n' "$PIP_VENV_TOOL" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# MARK, when given, must appear in the stamp: a pinned extra package changed since the install means a new venv.
pip_venv_exit_if_present() {
  local executable="$1" mark="${2:-}"
  [[ -x "$VENV/bin/$executable" && -f "$ROOT/.installed" ]] || return 0
  [[ -z "$mark" ]] || grep -qsF -- "$mark" "$ROOT/.installed" || return 0
  log "present in $VENV ($(cat "$ROOT/.installed"))"
  exit 0
}

# PYTHONS names the Python versions the tool supports (for the message when PYTHON is missing); NOTE, when not
# empty, follows the "pip install" line in parentheses.
pip_venv_create() {
  local pythons="$1" note="$2"
  shift 2
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found: set PYTHON to a Python $pythons interpreter"
  PIP_VENV_START=$SECONDS
  PIP_VENV_PACKAGES="$*"
  rm -rf "$VENV"
  mkdir -p "$ROOT"
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  log "pip install $*${note:+ ($note)}"
  "$VENV/bin/pip" install --quiet "$@" || die "pip install $* failed (see above)"
}

pip_venv_check_version() {
  local modules="$1" code="$2" installed
  installed="$("$VENV/bin/python" -c "$code")" || die "$modules does not import in $VENV"
  [[ "$installed" == "$PIP_VENV_VERSION" ]] || die "pip installed $PIP_VENV_TOOL $installed, not $PIP_VENV_VERSION"
}

pip_venv_mark_installed() {
  local elapsed=$((SECONDS - PIP_VENV_START))
  printf '%s installed in %s s\n' "$PIP_VENV_PACKAGES" "$elapsed" > "$ROOT/.installed"
  log "$PIP_VENV_TOOL $PIP_VENV_VERSION in $VENV: $elapsed s"
}
