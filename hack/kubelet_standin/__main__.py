"""Command line: `python -m hack.kubelet_standin --kubeconfig PATH --node local-exec --state-dir DIR`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from hack.kubelet_standin.standin import start_standin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hack.kubelet_standin", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", default="local-exec")
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster/standin"))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    standin = start_standin(args.kubeconfig, args.node, args.state_dir)
    logging.info("kubelet stand-in running for node %s (state in %s)", args.node, args.state_dir)
    stop.wait()
    logging.info("stopping: killing pod processes and removing their network namespaces")
    standin.stop()


if __name__ == "__main__":
    main()
