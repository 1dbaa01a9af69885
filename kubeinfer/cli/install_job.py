"""The in-cluster side of `kubeinfer models install`: the resource from the environment, results as ConfigMaps."""

from __future__ import annotations

import json
import os
import threading
import time

from kubeinfer.cli.cell import write_result
from kubeinfer.resources.loader import ManifestError, parse_document
from kubeinfer.resources.model_install import ModelInstall

ENV_VAR = "KUBEINFER_MODEL_INSTALL"


def load_from_env() -> ModelInstall:
    raw = os.environ.get(ENV_VAR)
    if not raw:
        raise ManifestError(f"give a ModelInstall manifest, or set {ENV_VAR} (the operator's install Job does)")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{ENV_VAR}: not JSON ({exc})") from None
    return parse_document(data, ModelInstall, ENV_VAR)


class ProgressWriter:
    """Writes download progress to a ConfigMap at most every `interval` seconds; the operator mirrors it."""

    def __init__(self, name: str, interval: float = 2.0) -> None:
        self.name = name
        self.interval = interval
        self._last = 0.0
        self._latest: dict[str, float | int | None] | None = None
        self._lock = threading.Lock()

    def update(self, done: int, total: int | None, rate: float) -> None:
        with self._lock:
            self._latest = {"bytesDone": done, "bytesTotal": total, "bytesPerSecond": round(rate, 1)}
            if time.monotonic() - self._last < self.interval:
                return
            self._last = time.monotonic()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            latest = self._latest
        if latest is not None:
            write_result(self.name, latest)


__all__ = ["ProgressWriter", "load_from_env", "write_result"]
