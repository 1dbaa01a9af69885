#!/usr/bin/env bash
# Print the path of a Debian root filesystem tarball with the given packages, built by debootstrap from Debian's
# package archive (no container registry) and cached by its suite and package list.
#   hack/kind/rootfs.sh NAME PACKAGE[,PACKAGE...]
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

name="${1:?usage: rootfs.sh NAME PACKAGES}"
packages="${2:?usage: rootfs.sh NAME PACKAGES}"
# The host's own Debian mirror (one-line or deb822 sources), else deb.debian.org.
mirror="${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | sed -n -e 's#^deb \(http[^ ]*\) .*#\1#p' -e 's#^URIs: *\(http[^ ]*\).*#\1#p' | head -1 || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"
key="$(content_hash "$DEBIAN_SUITE" "$packages")"
out_dir="$KUBEINFER_CACHE_DIR/rootfs"
tarball="$out_dir/$name-$DEBIAN_SUITE-$key.tar"
if [[ -f "$tarball" ]]; then
  echo "$tarball"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not found: run hack/kind/install.sh (apt-get install debootstrap)"
mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.build-$name-XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "debootstrap $DEBIAN_SUITE ($name) from $mirror"
timed "debootstrap $name" debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$work/root" "$mirror" >"$work/log" 2>&1 \
  || { tail -20 "$work/log" >&2; die "debootstrap failed"; }
# Package caches and lists are not part of an image.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* "$work/root/var/log/"*
tar -C "$work/root" --numeric-owner -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
log "rootfs $name: $(du -h "$tarball" | cut -f1)"
echo "$tarball"
