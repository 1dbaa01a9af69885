#!/usr/bin/env bash
# Print the Node manifests of the simulated pools (kwok-managed), as one YAML stream: the kwokctl control plane
# (operator scale benchmark) and kind's simulated pools (hack/kind/kwok.sh) use them. Each node carries the taint
# kubeinfer.dev/pool=<pool>:NoSchedule, so only pods placed on that pool by kubeinfer (which tolerate it) bind there.
# Pool sizes are overridable: KUBEINFER_CPU_NODES, KUBEINFER_GPU_NODES.
set -euo pipefail

CPU_NODES="${KUBEINFER_CPU_NODES:-2}"
GPU_NODES="${KUBEINFER_GPU_NODES:-2}"

# kwok node: annotated so kwok's controller (run with that annotation selector) heartbeats it and runs its pods.
kwok_node() {  # kwok_node NAME POOL CPU MEMORY EXTRA_LABELS EXTRA_CAPACITY TAINTS
  local name="$1" pool="$2" cpu="$3" memory="$4" labels="$5" capacity="$6" taints="$7"
  cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
    kubeinfer.dev/pool: $pool
$labels
spec:
$taints
status:
  capacity: &resources
    cpu: "$cpu"
    memory: $memory
    pods: "110"
$capacity
  allocatable: *resources
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
    kubeProxyVersion: fake
YAML
}

for i in $(seq 0 $((CPU_NODES - 1))); do
  kwok_node "cpu-$i" cpu 16 64Gi "" "" "  taints:
  - key: kubeinfer.dev/pool
    value: cpu
    effect: NoSchedule"
done

# GPU nodes look like an 8 x H100 80GB machine; the labels follow NVIDIA GPU feature discovery.
for i in $(seq 0 $((GPU_NODES - 1))); do
  kwok_node "gpu-$i" gpu 96 1024Gi \
    "    nvidia.com/gpu.present: \"true\"
    nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
    nvidia.com/gpu.count: \"8\"
    nvidia.com/gpu.memory: \"81559\"" \
    "    nvidia.com/gpu: \"8\"" \
    "  taints:
  - key: kubeinfer.dev/pool
    value: gpu
    effect: NoSchedule
  - key: nvidia.com/gpu
    value: present
    effect: NoSchedule"
done
