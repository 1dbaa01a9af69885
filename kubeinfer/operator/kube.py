"""Small idioms of talking to the API server that every reconciler here uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from kubernetes import client, config
from urllib3.util.retry import Retry

#: The key runner Jobs write their JSON result under (`kubeinfer.cli.cell.write_result`).
RESULT_KEY = "result.json"


def create_or_adopt(create: Callable[[], object]) -> None:
    """Create an object with a deterministic name; one already there (from before a restart) is adopted."""
    try:
        create()
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def read_json_config_map(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    """The JSON a Job wrote to ConfigMap `name`, or None while it has written nothing."""
    try:
        config_map = core.read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    parsed: dict[str, Any] = json.loads((config_map.data or {}).get(RESULT_KEY, "{}"))
    return parsed


def delete_job(batch: client.BatchV1Api, namespace: str, name: str) -> None:
    """Delete a Job and (in the background) its pods; a Job already gone is fine."""
    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise


@cache
def shared_api_client() -> client.ApiClient:
    """One client for every handler: one connection pool, and retries where the API server asks for them.

    A busy API server answers 429 (with Retry-After) or a 5xx; without retries each such answer would
    end a daemon and kopf would restart it a minute later.
    """
    config.load_config()
    configuration = client.Configuration.get_default_copy()
    configuration.retries = Retry(
        total=6,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    return client.ApiClient(configuration)


class PollInterval:
    """Waits between checks of something slow: `first`, then half as long again each time, up to `most`."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = first, max(first, most)
        self._next = first

    def __call__(self) -> float:
        value = self._next
        self._next = min(self._next * 1.5, self.most)
        return value

    def reset(self) -> None:
        self._next = self.first
