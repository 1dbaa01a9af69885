#!/usr/bin/env bash
# Put Debian's prometheus and promtool into a versioned cache folder, for the tests that run real Prometheus.
# The .deb is downloaded with apt and unpacked with dpkg-deb rather than installed: nothing is registered
# with dpkg, no system service is created or started, and no root is needed when the apt lists are current.
# Idempotent: returns at once when the binaries are already there.
set -euo pipefail

CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
PKG="${PROMETHEUS_DEB:-prometheus}"
ROOT="$CACHE_DIR/prometheus"
BIN="$ROOT/bin"

log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -x "$BIN/prometheus" && -x "$BIN/promtool" ]]; then
  log "present in $BIN ($("$BIN/prometheus" --version 2>&1 | head -n1))"
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || die "apt-get/dpkg-deb not found: this script needs a Debian-based machine; otherwise put prometheus and promtool (2.x) into $BIN by hand"

start=$SECONDS
candidate() { apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [[ -z "$(candidate)" || "$(candidate)" == "(none)" ]]; then
  [[ $EUID -eq 0 ]] || die "apt knows no '$PKG' package and refreshing the lists needs root: run 'sudo apt-get update' first"
  log "apt-get update"
  apt-get update -qq
fi
version="$(candidate)"
[[ -n "$version" && "$version" != "(none)" ]] || die "apt has no '$PKG' package (Debian 12 ships 2.42)"

work="$(mktemp -d)"
chmod 0755 "$work"  # apt's _apt user writes the download there
trap 'rm -rf "$work"' EXIT
log "downloading $PKG $version"
(cd "$work" && apt-get download -qq "$PKG=$version")
dpkg-deb -x "$work"/*.deb "$work/root"
mkdir -p "$BIN"
install -m 0755 "$work/root/usr/bin/prometheus" "$work/root/usr/bin/promtool" "$BIN/"
printf '%s=%s\n' "$PKG" "$version" > "$ROOT/VERSION"
log "$("$BIN/prometheus" --version 2>&1 | head -n1) in $BIN: $((SECONDS - start)) s"
