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
# pip behind a TLS-intercepting proxy: hand the host's CA bundle to the build. podman mounts it; `docker build`
# mounts no files, so with Docker the bundle is copied into a base of the build's own at a path of its own (the
# images' system bundle stays Debian's; only pip in the build is pointed at the copy).
ca="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [[ -n "$ca" && -f "$ca" ]]; then
  if [[ "$ENGINE" == podman ]]; then
    build_args+=(--build-arg "PIP_CERT=$ca" -v "$ca:$ca:ro")
  else
    build_ca=/usr/local/share/kubeinfer/build-ca.crt
    ca_base="localhost/kubeinfer/build-base:$(content_hash "$base" "$ca")"
    if ! image_exists "$ca_base"; then
      ctx="$(mktemp -d)"
      cp "$ca" "$ctx/ca.crt"
      printf 'FROM %s\nCOPY ca.crt %s\n' "$base" "$build_ca" >"$ctx/Dockerfile"
      "$ENGINE" build -q -t "$ca_base" "$ctx" >/dev/null
      rm -rf "$ctx"
    fi
    base="$ca_base"
    build_args=(--build-arg "PYTHON_IMAGE=$base" --build-arg "PIP_CERT=$build_ca")
  fi
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
