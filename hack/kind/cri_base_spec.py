#!/usr/bin/env python3
"""Print the OCI base spec kind's node image gives containerd (`/etc/containerd/cri-base.json`).

kind's base image runs `ctr oci spec`, adds its mount-product-files.sh createContainer hook and drops the
default rlimits (so pods inherit the node's); the same edits, without jq. The spec `ctr oci spec` printed comes on
standard input (node-image.sh runs the node root filesystem's own ctr).
"""

import json
import sys

try:
    spec = json.load(sys.stdin)
    process = spec["process"]
except (ValueError, KeyError, TypeError) as error:
    sys.exit(f"cri_base_spec.py: standard input is not the OCI spec `ctr oci spec` prints ({error!r})")
spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
process.pop("rlimits", None)
print(json.dumps(spec, indent=2))
