"""`python -m kubeinfer.gateway` as a child process that tests and scripts can SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kubeinfer.engines.llamacpp_server import free_port
from testbed.served import terminate, wait_healthy

MODEL = "smollm2-135m"
KEY = "sk-recovery"


class GatewayProcess:
    """`python -m kubeinfer.gateway` in its own process, so the test can SIGKILL it.

    `shared_with_pods`: its data folder is also the pods' (a hostPath volume in the kind cluster). In the chart
    the gateway and the pods both run as uid 10001; here the gateway runs as this machine's user, so it creates
    files and folders open to every user (umask 0) for the pods to write into.
    """

    def __init__(
        self,
        data_dir: Path,
        engine_url: str,
        log: Path,
        env: dict[str, str] | None = None,
        *,
        shared_with_pods: bool = False,
    ) -> None:
        self.data_dir, self.engine_url, self.log = data_dir, engine_url, log
        self.extra_env = env or {}
        self.umask = 0 if shared_with_pods else -1
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        env = {**os.environ, "KUBEINFER_GATEWAY__API_KEYS": f"{KEY}=recovery", **self.extra_env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubeinfer.gateway",
                    "--port",
                    str(self.port),
                    "--model",
                    MODEL,
                    "--engine-url",
                    self.engine_url,
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                umask=self.umask,
            )

        wait_healthy(self.proc, self.url, self.log)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
