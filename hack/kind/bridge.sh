# The offline node image's pod network (sourced by cluster.sh, not executed): a bridge CNI on every node, since
# kindnetd, kind's own network plugin, does not build from the Go module proxy (FACTS: "kind itself").
#   one node:    the node's bridge takes the whole pod subnet, as kind's single-node clusters always did here.
#   more nodes:  node i (control plane 0, then worker, worker2, ...) takes the i-th /24 of the pod subnet; each
#                node routes the other nodes' /24s to their addresses, and masquerades only traffic that leaves
#                the pod subnet, so pods reach each other across nodes by their own addresses, without NAT.
# Each node's CNI file is mounted over the image's own at creation, so no pod ever gets an address from another
# node's range. Kubernetes' own `spec.podCIDR` of a node is not read by the bridge plugin and may name another /24.
# Needs: KIND_CLUSTER, KIND_STATE_DIR, POD_SUBNET, WORKERS, ENGINE, REPO_ROOT, kubectl, log, die.

cni_dir() { echo "$KIND_STATE_DIR/cni"; }

node_name() {  # node_name INDEX: kind's container and node name of node INDEX
  local index="$1"
  if ((index == 0)); then
    echo "$KIND_CLUSTER-control-plane"
  elif ((index == 1)); then
    echo "$KIND_CLUSTER-worker"
  else
    echo "$KIND_CLUSTER-worker$index"
  fi
}

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

int_to_ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }

# Whether the pod subnet holds a /24 for each of the cluster's nodes; says why not on stderr.
bridge_fits() {
  local prefix="${POD_SUBNET#*/}" nodes=$((WORKERS + 1))
  ((WORKERS == 0)) && return 0
  if ((prefix > 24 || (1 << (24 - prefix)) < nodes)); then
    echo "KIND_POD_SUBNET $POD_SUBNET holds fewer than $nodes /24 ranges, one for each node (KIND_WORKERS=$WORKERS)" >&2
    return 1
  fi
}

node_range() {  # node_range INDEX: the pod range of node INDEX
  ((WORKERS == 0)) && { echo "$POD_SUBNET"; return; }
  local base="${POD_SUBNET%/*}" prefix="${POD_SUBNET#*/}" start
  start=$(($(ip_to_int "$base") & ~((1 << (32 - prefix)) - 1)))
  echo "$(int_to_ip $((start + $1 * 256)))/24"
}

write_cni_configs() {  # one file per node, <cni dir>/<node>.conflist, from the image's own file
  local i masq=true
  ((WORKERS > 0)) && masq=false  # across nodes pods keep their addresses; link_node_ranges masquerades the rest
  mkdir -p "$(cni_dir)"
  for ((i = 0; i <= WORKERS; i++)); do
    sed -e "s#10.244.0.0/16#$(node_range "$i")#" -e "s#\"ipMasq\": true#\"ipMasq\": $masq#" \
      "$REPO_ROOT/hack/kind/files/10-bridge.conflist" >"$(cni_dir)/$(node_name "$i").conflist"
  done
}

node_address() {  # node_address NAME: the node's IPv4 InternalIP
  kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' \
    | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'
}

# After `kind create cluster` with workers: on every node a route to each other node's range through that node,
# and one masquerade rule for pod traffic leaving the pod subnet. Routes live in the node containers; a
# restarted node container loses them (run `make kind-down kind-up`).
link_node_ranges() {
  ((WORKERS > 0)) || return 0
  local i j node other address
  for ((i = 0; i <= WORKERS; i++)); do
    node="$(node_name "$i")"
    for ((j = 0; j <= WORKERS; j++)); do
      ((i == j)) && continue
      other="$(node_name "$j")"
      address="$(node_address "$other")" || die "no IPv4 InternalIP on node $other"
      "$ENGINE" exec "$node" ip route replace "$(node_range "$j")" via "$address"
    done
    "$ENGINE" exec "$node" sh -c "iptables -t nat -C POSTROUTING -s $POD_SUBNET ! -d $POD_SUBNET -j MASQUERADE \
      2>/dev/null || iptables -t nat -A POSTROUTING -s $POD_SUBNET ! -d $POD_SUBNET -j MASQUERADE"
  done
  log "pod ranges routed between $((WORKERS + 1)) nodes"
}

# Pod IPs reachable from this machine (KIND_HOST_ROUTE=1): each node's range through that node. Writes the routes
# to ROUTE_FILE, one a line, for remove_host_routes.
add_host_routes() {
  local i node address
  : >"$ROUTE_FILE"
  for ((i = 0; i <= WORKERS; i++)); do
    node="$(node_name "$i")"
    address="$(node_address "$node")" || die "no IPv4 InternalIP on node $node"
    ip route replace "$(node_range "$i")" via "$address"
    echo "$(node_range "$i") via $address" >>"$ROUTE_FILE"
    log "route $(node_range "$i") via $address"
  done
}

remove_host_routes() {
  [[ -f "$ROUTE_FILE" ]] || return 0
  local route
  while read -r route; do
    # shellcheck disable=SC2086
    [[ -n "$route" ]] && { ip route del $route 2>/dev/null || true; }
  done <"$ROUTE_FILE"
  rm -f "$ROUTE_FILE"
}
