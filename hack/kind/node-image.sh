#!/usr/bin/env bash
# `make kind-node-image`: a kind node image assembled with no container registry, printed as its image reference.
# kind's own `kind build node-image` drives Docker and pulls its base image; here every part comes from package
# registries instead (docs/kind.md):
#   - root filesystem: debootstrap from Debian (systemd, containerd, runc, CNI plugins, iptables) + kind's
#     images/base/files from the kind Go module
#   - kubelet, kubeadm, kubectl, control-plane and kube-proxy binaries: hack/controlplane/build.sh (Go modules)
#   - images preloaded into the node's containerd: the control plane, kube-proxy (a Debian base with iptables),
#     CoreDNS and local-path-provisioner from their Go modules, the pause image from the kubelet's pause.c
#   - networking: a bridge CNI config (kind's kindnetd is not buildable from the Go module proxy), so the offline
#     image is for single-node clusters
# Cached by content: the tag carries a hash of every input, and a second run only prints the reference.
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COREDNS_VERSION="${COREDNS_VERSION:-v1.13.1}"
LOCAL_PATH_VERSION="${LOCAL_PATH_VERSION:-v0.0.30}"
NODE_PACKAGES="systemd,dbus,jq,containerd,runc,containernetworking-plugins,iptables,nftables,iproute2,conntrack,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,procps,socat"
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates,iptables,conntrack,procps"
ADDONS="$KUBEINFER_CACHE_DIR/kind/addons"
KIND_SRC="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -d "$KIND_SRC/images/base/files" ]] || die "kind $KIND_VERSION sources not found in the Go module cache"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

# --- binaries ----------------------------------------------------------------------------------------------------
build_addons() {
  mkdir -p "$ADDONS/bin"
  local gobuild=(env GOBIN="$ADDONS/bin" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$GO" install -trimpath -ldflags "-s -w")
  [[ -x "$ADDONS/bin/coredns" ]] || timed "coredns" "${gobuild[@]}" "github.com/coredns/coredns@$COREDNS_VERSION"
  [[ -x "$ADDONS/bin/local-path-provisioner" ]] \
    || timed "local-path-provisioner" "${gobuild[@]}" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
  if [[ ! -x "$ADDONS/bin/pause" ]]; then
    local k8s_src
    k8s_src="$(cd "$KUBEINFER_CACHE_DIR/k8s/$K8S_VERSION/src/kubernetes" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)"
    gcc -Os -static -DVERSION="$K8S_VERSION" -o "$ADDONS/bin/pause" "$k8s_src/build/pause/linux/pause.c"
  fi
}

# --- images preloaded into the node ------------------------------------------------------------------------------
# IMAGE=BINARY[:ENTRYPOINT-is-binary]; the tags are the ones kubeadm and our storage manifest ask for.
component_images() {  # prints "ref binary entrypoint(yes|no)" lines
  local ref name
  while read -r ref; do
    name="${ref##*/}"; name="${name%%:*}"
    case "$name" in
      kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy) echo "$ref $K8S_BIN/$name no" ;;
      etcd) echo "$ref $K8S_BIN/etcd no" ;;
      coredns) echo "$ref $ADDONS/bin/coredns coredns" ;;
      pause) echo "$ref $ADDONS/bin/pause pause" ;;
      *) die "kubeadm asks for an image this script cannot build: $ref" ;;
    esac
  done < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
  echo "$LOCAL_PATH_IMAGE $ADDONS/bin/local-path-provisioner no"
  echo "$LOCAL_PATH_HELPER_IMAGE - no"
}

build_component_images() {  # build_component_images BASE_IMAGE ARCHIVE
  local base="$1" archive="$2" ref bin entry refs=() ctx
  ctx="$(mktemp -d)"
  while read -r ref bin entry; do
    rm -rf "${ctx:?}"/*
    if [[ "$bin" == - ]]; then
      printf 'FROM %s\n' "$base" >"$ctx/Containerfile"
    elif [[ "$entry" == no ]]; then
      cp "$bin" "$ctx/"
      printf 'FROM %s\nCOPY %s /usr/local/bin/\n' "$base" "$(basename "$bin")" >"$ctx/Containerfile"
    else  # a static binary that is the image's entrypoint (pause, coredns): nothing else inside
      cp "$bin" "$ctx/"
      printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$(basename "$bin")" "$entry" "$entry" >"$ctx/Containerfile"
    fi
    "$ENGINE" build -q -t "$ref" -f "$ctx/Containerfile" "$ctx" >/dev/null  # docker finds no Containerfile alone
    refs+=("$ref")
  done < <(component_images)
  rm -rf "$ctx"
  rm -f "$archive"
  "$ENGINE" save $([[ "$ENGINE" == podman ]] && echo -m) -o "$archive" "${refs[@]}" >/dev/null
  printf '%s\n' "${refs[@]}"
}

# --- the node root filesystem ------------------------------------------------------------------------------------
customize_rootfs() {  # customize_rootfs DIR PAUSE_IMAGE
  local root="$1" pause="$2" f
  cp -a "$KIND_SRC/images/base/files/usr/local/bin/." "$root/usr/local/bin/"
  mkdir -p "$root/kind/bin" "$root/LICENSES" "$root/etc/kubernetes/manifests" "$root/kind/manifests" \
    "$root/opt/cni/bin" "$root/etc/cni/net.d" "$root/usr/local/sbin"
  cp -a "$KIND_SRC/images/base/files/kind/." "$root/kind/"
  chmod 0755 "$root/kind" "$root/kind/bin" "$root"/kind/bin/* "$root"/usr/local/bin/*
  for f in crictl.yaml default sysctl.d systemd; do cp -a "$KIND_SRC/images/base/files/etc/$f" "$root/etc/"; done
  # Debian's containerd and runc, where kind's unit files look for them.
  ln -sf /usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 "$root/usr/local/bin/"
  ln -sf /usr/sbin/runc "$root/usr/local/sbin/runc"
  for f in "$root"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "$f")" "$root/opt/cni/bin/"; done
  # kind's containerd config, minus the rootless fuse-overlayfs plugin; restrict_oom_score_adj because a
  # container without CAP_SYS_RESOURCE cannot lower oom_score_adj (every sandbox fails otherwise).
  sed -e '/^\[proxy_plugins\]/,/^  address = /d' \
      -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
      -e "s#sandbox_image = .*#sandbox_image = \"$pause\"#" \
      "$KIND_SRC/images/base/files/etc/containerd/config.toml" >"$root/etc/containerd/config.toml"
  rm -f "$root/etc/systemd/system/containerd-fuse-overlayfs.service"
  # The node's own ctr writes the default spec: the host may have no containerd at all.
  chroot "$root" ctr oci spec | "$REPO_ROOT/hack/kind/cri_base_spec.py" >"$root/etc/containerd/cri-base.json"
  cp "$REPO_ROOT/hack/kind/files/10-bridge.conflist" "$root/etc/cni/net.d/"
  # kind's own local-path manifest, read from the kind module's sources, with our images.
  sed -n '/^const defaultStorageManifest = `/,/^`/p' "$KIND_SRC/pkg/build/nodeimage/const_storage.go" | sed '1d;$d' \
    | sed -e "s#\` + storageProvisionerImage + \`#$LOCAL_PATH_IMAGE#" -e "s#\` + storageHelperImage + \`#$LOCAL_PATH_HELPER_IMAGE#" \
    >"$root/kind/manifests/default-storage.yaml"
  grep -q "$LOCAL_PATH_IMAGE" "$root/kind/manifests/default-storage.yaml" || die "kind's storage manifest not found"
  : >"$root/kind/manifests/default-cni.yaml"
  for f in kubelet kubeadm kubectl; do install -m 0755 "$K8S_BIN/$f" "$root/usr/bin/$f"; done
  echo "$K8S_VERSION" >"$root/kind/version"
  # systemd as kind's base image sets it up
  find "$root/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
}

# The build container as the node image, configured as kind's own node image: entrypoint, env and stop signal.
commit_node() {  # commit_node IMAGE STAGING_TAG SCRATCH_DIR
  local image="$1" staging="$2" dir="$3"
  local changes=(--change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'ENV container=docker')
  if [[ "$ENGINE" == podman ]]; then
    "$ENGINE" commit "${changes[@]}" --change 'STOPSIGNAL SIGRTMIN+3' kubeinfer-node-build "$image" >/dev/null
  else  # `docker commit --change` refuses STOPSIGNAL ("stopsignal is not a valid change command"): a build sets it
    "$ENGINE" commit "${changes[@]}" kubeinfer-node-build "$staging" >/dev/null
    mkdir -p "$dir"
    printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$staging" >"$dir/Containerfile"
    "$ENGINE" build -q -t "$image" -f "$dir/Containerfile" "$dir" >/dev/null
  fi
}

main() {
  "$REPO_ROOT/hack/controlplane/build.sh"
  build_addons
  local node_tar base_tar
  node_tar="$("$REPO_ROOT/hack/kind/rootfs.sh" node "$NODE_PACKAGES")"
  base_tar="$("$REPO_ROOT/hack/kind/rootfs.sh" base "$BASE_PACKAGES")"
  local key
  key="$(content_hash "$node_tar" "$base_tar" "$K8S_VERSION" "$KIND_VERSION" "$COREDNS_VERSION" "$LOCAL_PATH_VERSION" \
    "$REPO_ROOT/hack/kind/node-image.sh" "$REPO_ROOT/hack/kind/files" "$REPO_ROOT/hack/kind/cri_base_spec.py")"
  local image="localhost/kubeinfer/kind-node:$K8S_VERSION-$key"
  if image_exists "$image"; then
    log "node image present: $image"
    echo "$image"
    return
  fi
  local start=$SECONDS
  WORK="$(mktemp -d "$KUBEINFER_CACHE_DIR/kind/.node-XXXXXX")"
  trap 'rm -rf "$WORK"; "$ENGINE" rm -f kubeinfer-node-build >/dev/null 2>&1 || true' EXIT
  local work="$WORK"
  local base="localhost/kubeinfer/debian-base:$(basename "$base_tar" .tar | sed 's/^base-//')"
  image_exists "$base" || "$ENGINE" import "$base_tar" "$base" >/dev/null
  LOCAL_PATH_IMAGE="localhost/kubeinfer/local-path-provisioner:$LOCAL_PATH_VERSION"
  LOCAL_PATH_HELPER_IMAGE="localhost/kubeinfer/local-path-helper:$(basename "$base_tar" .tar | sed 's/^base-//')"
  local refs pause
  refs="$(build_component_images "$base" "$work/images.tar")"
  pause="$(grep '/pause:' <<<"$refs")"
  log "component images: $(tr '\n' ' ' <<<"$refs")"
  mkdir "$work/root"
  tar -C "$work/root" --numeric-owner -xf "$node_tar"
  customize_rootfs "$work/root" "$pause"
  tar -C "$work/root" --numeric-owner -cf "$work/node.tar" .
  rm -rf "$work/root"
  local staging="localhost/kubeinfer/kind-node-staging:$key"
  "$ENGINE" import "$work/node.tar" "$staging" >/dev/null
  rm -f "$work/node.tar"
  # Preload the images into the node's containerd, as kind's own builder does, then commit the result.
  "$ENGINE" rm -f kubeinfer-node-build >/dev/null 2>&1 || true
  "$ENGINE" run -d --name kubeinfer-node-build --privileged --entrypoint /bin/sleep \
    -v "$work/images.tar:/kind/images.tar:ro" "$staging" infinity >/dev/null
  "$ENGINE" exec kubeinfer-node-build sh -c '
    set -e
    containerd >/var/log/containerd-build.log 2>&1 &
    pid=$!
    for i in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
    ctr -n k8s.io images import --no-unpack --all-platforms /kind/images.tar >/dev/null
    ctr -n k8s.io images ls -q
    kill "$pid"; wait "$pid" || true
    rm -f /var/log/containerd-build.log' >&2
  commit_node "$image" "$staging" "$work/stop-signal"
  "$ENGINE" rm -f kubeinfer-node-build >/dev/null
  "$ENGINE" rmi "$staging" >/dev/null 2>&1 || true
  log "node image $image built in $((SECONDS - start)) s ($("$ENGINE" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
  echo "$image"
}

main "$@"
