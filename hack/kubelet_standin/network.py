"""Pod networking: one network namespace per pod, wired by a veth pair to the host bridge kubeinfer0.

Pod N gets the namespace `kubeinfer-N` and the IP 10.244.250.N/24; the host side of the bridge is 10.244.250.1,
which is also the pods' default route and the address they reach the API server on. `ip netns add` fails
when the name exists, so it doubles as an IP allocator that two stand-ins on one machine can share. Each
namespace has an owner file naming the stand-in's pid, so a crashed stand-in's namespaces are reaped later.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "kubeinfer0"
SUBNET = "10.244.250"
HOST_IP = f"{SUBNET}.1"
OWNERS = Path("/run/kubeinfer-standin")


class NetworkError(RuntimeError):
    """An `ip` command failed; the message has its stderr."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class PodNetwork:
    index: int

    @property
    def netns(self) -> str:
        return f"kubeinfer-{self.index}"

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index}"

    def delete(self) -> None:
        """Remove the namespace (its eth0 and the host-side veth go with it) and its owner file."""
        ip("netns", "delete", self.netns, check=False)
        (OWNERS / self.netns).unlink(missing_ok=True)


def ensure_bridge() -> None:
    if ip("link", "show", BRIDGE, check=False).returncode != 0:
        ip("link", "add", BRIDGE, "type", "bridge", check=False)  # another stand-in may win the race
        ip("addr", "replace", f"{HOST_IP}/24", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> None:
    """Delete namespaces whose owning stand-in is gone (a crash or a SIGKILL skipped its cleanup)."""
    if not OWNERS.is_dir():
        return
    for owner in OWNERS.glob("kubeinfer-*"):
        text = owner.read_text().strip()
        if not text.isdigit() or not _pid_alive(int(text)):
            PodNetwork(int(owner.name.rsplit("-", 1)[1])).delete()


def create_pod_network() -> PodNetwork:
    """Allocate the lowest free index and wire its namespace to the bridge (eth0, lo, default route)."""
    ensure_bridge()
    OWNERS.mkdir(parents=True, exist_ok=True)
    for index in range(2, 255):
        net = PodNetwork(index)
        if ip("netns", "add", net.netns, check=False).returncode != 0:
            continue
        (OWNERS / net.netns).write_text(str(os.getpid()))
        try:
            host_veth = f"kiveth{index}"
            # A deleted pod's veth outlives its namespace while a process still holds that namespace open;
            # the index is free again by then, so the stale host end goes before the new pair is made.
            ip("link", "delete", host_veth, check=False)
            ip("link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", net.netns)
            ip("link", "set", host_veth, "master", BRIDGE, "up")
            ip("-n", net.netns, "addr", "add", f"{net.ip}/24", "dev", "eth0")
            ip("-n", net.netns, "link", "set", "eth0", "up")
            ip("-n", net.netns, "link", "set", "lo", "up")
            ip("-n", net.netns, "route", "add", "default", "via", HOST_IP)
        except NetworkError:
            net.delete()
            raise
        return net
    raise NetworkError(f"no free address left in {SUBNET}.0/24")


def delete_bridge_if_unused() -> None:
    """Remove kubeinfer0 once no stand-in has a pod namespace left (veths vanish asynchronously; names do not)."""
    if "kubeinfer-" not in ip("netns", "list", check=False).stdout:
        ip("link", "delete", BRIDGE, check=False)
