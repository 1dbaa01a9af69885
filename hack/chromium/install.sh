#!/usr/bin/env bash
# Install Debian's chromium for the web console's browser tests (Playwright drives it through
# executable_path; Playwright's own browser download is never used). Idempotent: returns at once when
# a chromium binary is already there. Installing a .deb with its libraries needs root.
set -euo pipefail

PKG="${CHROMIUM_DEB:-chromium}"
BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

log() { printf '[chromium] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -x "$BIN" ]]; then
  log "present: $("$BIN" --version 2>/dev/null | head -n1) at $BIN"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: install Chromium by hand and set CHROMIUM_BIN to its binary"
sudo=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "installing '$PKG' needs root: run 'sudo apt-get install -y $PKG'"
  sudo=(sudo)
fi

start=$SECONDS
candidate() { apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [[ -z "$(candidate)" || "$(candidate)" == "(none)" ]]; then
  log "apt-get update"
  "${sudo[@]}" apt-get update -qq
fi
version="$(candidate)"
[[ -n "$version" && "$version" != "(none)" ]] || die "apt has no '$PKG' package (Debian 12 ships it in main)"

log "installing $PKG $version"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PKG=$version" >/dev/null
[[ -x "$BIN" ]] || die "'$PKG' installed but $BIN is missing"
log "$("$BIN" --version 2>/dev/null | head -n1) at $BIN: $((SECONDS - start)) s"
