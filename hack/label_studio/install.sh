#!/usr/bin/env bash
# Install Label Studio from PyPI into its own virtualenv, cached outside the checkout by version.
# Label Studio pins many packages (Django, numpy, boto, ...) that must not meet kubeinfer's own .venv, so it
# gets a venv of its own at $KUBEINFER_CACHE_DIR/label-studio/<version>/venv. The tests start it from there.
# Next to the venv, template/label_studio.sqlite3 is a SQLite database with all of Label Studio's migrations
# applied (about 30 s of CPU, done here once per version): the tests copy it into their own data folder, so
# Label Studio finds its schema ready and starts in seconds.
# Idempotent: returns at once when that version and its template are already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pip_venv.sh"

VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
pip_venv_init label-studio "$VERSION"
TEMPLATE="$ROOT/template/label_studio.sqlite3"

# A subshell, since pip_venv_exit_if_present exits when the venv is there: the template step still runs after it.
(
  pip_venv_exit_if_present label-studio
  rm -rf "$(dirname "$TEMPLATE")" # made by the venv this replaces
  pip_venv_create 3.10-3.12 "" "label-studio==$VERSION"
  # `label-studio --version` would start a server, so the import is the check.
  pip_venv_check_version label_studio 'import label_studio; print(label_studio.__version__)'
  pip_venv_mark_installed
)

if [[ -f "$TEMPLATE" ]]; then
  log "template database present: $TEMPLATE"
  exit 0
fi
# Every label-studio command applies the migrations first; `version` then only prints. It runs offline in a
# scratch folder next to the template, and the database is renamed into place only once complete.
SECONDS=0
scratch="$(mktemp -d "$ROOT/template.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
log "migrating a template database in $scratch"
if ! HOME="$scratch" LABEL_STUDIO_BASE_DATA_DIR="$scratch" DJANGO_DB=sqlite \
  LABEL_STUDIO_DATABASE_NAME="$scratch/label_studio.sqlite3" SENTRY_DSN= FRONTEND_SENTRY_DSN= \
  COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false "$VENV/bin/label-studio" version >"$scratch/migrate.log" 2>&1; then
  tail -n 40 "$scratch/migrate.log" >&2
  die "label-studio could not migrate a template database (see above)"
fi
[[ -s "$scratch/label_studio.sqlite3" ]] || die "label-studio wrote no database in $scratch"
mkdir -p "$(dirname "$TEMPLATE")"
mv -T "$scratch/label_studio.sqlite3" "$TEMPLATE"
log "template database $TEMPLATE: $SECONDS s"
