"""Where a step's result goes: a ConfigMap in the pod's namespace, owned by the resource the step works for."""

from __future__ import annotations

import json
import os
from typing import Any

from kubeinfer.kube.client import api_client
from kubeinfer.kube.objects import put_config_map, result_config_map

#: The operator puts the owner reference of the resource the step works for here (a JSON object).
OWNER_ENV = "KUBEINFER_OWNER"


def write_result(name: str, result: dict[str, Any]) -> None:
    """Create or replace ConfigMap `name` in this pod's namespace, owned by the step's resource."""
    from kubernetes import client

    namespace = os.environ.get("POD_NAMESPACE", "default")
    owner = os.environ.get(OWNER_ENV)
    body = result_config_map(name, result, json.loads(owner) if owner else None)
    put_config_map(client.CoreV1Api(api_client()), namespace, body)
