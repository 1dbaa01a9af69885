#!/usr/bin/env bash
# `make images`: build kubeinfer's images from images/*.Dockerfile with Docker or podman (buildah), each saved as
# an image archive cached by content in $KUBEINFER_CACHE_DIR/images, and print the archives' paths.
#   hack/kind/images.sh TARGET=TAG@DOCKERFILE...
# With no registry (KUBEINFER_OFFLINE=1, or podman), the Python base image is a Debian root filesystem made by
# debootstrap (hack/kind/rootfs.sh) instead of python:3.11-slim-bookworm. A second run with the same sources is a
# no-op. `kind load image-archive` loads the printed archives (hack/kind/cluster.sh does).
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates,iptables,conntrack,procps"
OUT="$KUBEINFER_CACHE_DIR/images"
mkdir -p "$OUT"

build_args=()
if [[ "${KUBEINFER_OFFLINE:-}" == 1 || "$ENGINE" == podman ]]; then
  base_tar="$("$REPO_ROOT/hack/kind/rootfs.sh" base "$BASE_PACKAGES")"
  base="localhost/kubeinfer/debian-base:$(basename "$base_tar" .tar | sed 's/^base-//')"
  image_exists "$base" || "$ENGINE" import "$base_tar" "$base" >/dev/null
  build_args+=(--build-arg "PYTHON_IMAGE=$base")
else
  base="python:3.11-slim-bookworm"
fi
# pip behind a TLS-intercepting proxy: hand the host's CA bundle to the build.
ca="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [[ -n "$ca" && -f "$ca" ]]; then
  build_args+=(--build-arg "PIP_CERT=$ca")
  if [[ "$ENGINE" == podman ]]; then build_args+=(-v "$ca:$ca:ro"); fi
fi
if [[ "$ENGINE" == podman ]]; then build_args+=(--layers --network host); fi

for spec in "$@"; do
  target="${spec%%=*}"; rest="${spec#*=}"; tag="${rest%@*}"; dockerfile="${rest##*@}"
  key="$(content_hash "$base" "$target" "$tag" "$REPO_ROOT/$dockerfile" "$REPO_ROOT/pyproject.toml" \
    "$REPO_ROOT/README.md" "$REPO_ROOT/kubeinfer")"
  archive="$OUT/$target-$key.tar"
  if [[ -f "$archive" ]]; then
    log "$tag: cached ($archive)"
  else
    log "building $tag (target $target of $dockerfile)"
    start=$SECONDS
    "$ENGINE" build "${build_args[@]}" -f "$REPO_ROOT/$dockerfile" --target "$target" -t "$tag" "$REPO_ROOT" >&2
    "$ENGINE" save --format docker-archive -o "$archive.partial" "$tag" 2>/dev/null \
      || "$ENGINE" save -o "$archive.partial" "$tag"
    mv "$archive.partial" "$archive"
    # Older archives of this target are superseded.
    find "$OUT" -maxdepth 1 -name "$target-*.tar" ! -name "$(basename "$archive")" -delete
    log "$tag built in $((SECONDS - start)) s, $(du -h "$archive" | cut -f1)"
  fi
  echo "$archive"
done
