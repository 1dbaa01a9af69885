"""`python -m perf.kopf_threads N operator run ...`: the unchanged operator CLI with kopf's sync pool set to N threads.

For the operator scale benchmark's what-if run only (`--executor-threads`). kopf runs every sync daemon in
one ThreadPoolExecutor whose default size is Python's, min(32, CPUs + 4); a BenchmarkMatrix daemon holds
its thread for the whole matrix, so that size caps how many matrices run at once. This adds one more
startup handler that resizes the pool, then hands the command line to the real CLI; nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

import kopf

from kubeinfer.cli.app import app


def main() -> None:
    threads = int(sys.argv[1])

    @kopf.on.startup()
    def resize_executor(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.execution.max_workers = threads

    sys.argv = [sys.argv[0], *sys.argv[2:]]
    app()


if __name__ == "__main__":
    main()
