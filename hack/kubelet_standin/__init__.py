"""A kubelet stand-in: the one part of kubeinfer's test setup that stands in for a kubelet and a container runtime.

kwok only fakes pod status. For the node `local-exec`, this package does what a kubelet and a container
runtime would: it heartbeats the node, runs each bound pod's containers as local processes in the pod's own
network namespace (mapping kubeinfer's images to the locally built commands and volumes to local
directories), applies probes and restart policies, and reports pod status, IPs and exit codes through the
API. It is test and development tooling, not shipped; see docs/kubelet-standin.md for the pod contract.
"""

from hack.kubelet_standin.standin import StandIn, start_standin

__all__ = ["StandIn", "start_standin"]
