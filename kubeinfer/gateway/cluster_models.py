"""Models served in the cluster: ModelInstalls whose server answers, or idles at zero replicas until needed."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from kubeinfer.kube.client import api_client
from kubeinfer.resources.names import GROUP, INSTALL_PLURAL, VERSION

PLURAL = INSTALL_PLURAL


@cache
def _custom_api() -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client())


def served_models(namespace: str) -> dict[str, int]:
    """Model name -> creation time (unix seconds) of every served ModelInstall (Ready or Idle) in `namespace`."""
    items = _custom_api().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    found: dict[str, int] = {}
    for item in items:
        status = item.get("status") or {}
        answering = status.get("phase") == "Ready" and (status.get("serving") or {}).get("endpoints")
        if not answering and status.get("phase") != "Idle":  # an idle model scales up when a batch needs it
            continue
        name = item["spec"].get("model") or item["metadata"]["name"]
        created = datetime.fromisoformat(item["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        found[name] = int(created.timestamp())
    return found
