"""`kubeinfer operator run` as a child process: started, SIGKILLed, restarted and stopped by tests and perf scripts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

#: What the tests' operator runs with: the `cpu` pool of a matrix lands on the kind cluster's real node (labelled
#: pool `local`; testbed/kind.py), not on kwok's simulated `cpu` nodes, and a short poll interval keeps waits short.
TEST_ENV = {
    "KUBEINFER_OPERATOR__POOL_ALIASES": json.dumps({"cpu": "local"}),
    "KUBEINFER_OPERATOR__POLL_SECONDS": "0.5",
}
CLI = ("kubeinfer.cli.main",)


class OperatorProcess:
    """The operator watching one namespace as the identity in `kubeconfig`; output appended to `log`.

    `base_env` is the environment before `env` is added (TEST_ENV by default); `entry` is the module
    `python -m` runs, with its own leading arguments (perf/kopf_threads.py wraps the CLI).
    """

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        base_env: Mapping[str, str] = TEST_ENV,
        entry: Sequence[str] = CLI,
        cwd: Path | None = None,
    ) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.env = {**base_env, **(env or {})}
        self.entry, self.cwd = list(entry), cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.env}
        command = [sys.executable, "-m", *self.entry, "operator", "run", "--namespace", self.namespace]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.cwd)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod would end it: no finalizer or status is written on the way out."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM and wait; SIGKILL when it ignores that for `timeout` seconds."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
