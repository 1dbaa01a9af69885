"""Where a step's result goes: a ConfigMap in the pod's namespace, owned by the resource the step works for."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from kubeinfer.bench.load.records import pack_records
from kubeinfer.kube.client import api_client
from kubeinfer.kube.objects import put_config_map, result_config_map
from kubeinfer.kube.record_maps import RecordsTooLarge, record_maps

#: The operator puts the owner reference of the resource the step works for here (a JSON object).
OWNER_ENV = "KUBEINFER_OWNER"


def write_result(name: str, result: dict[str, Any]) -> None:
    """Create or replace ConfigMap `name` in this pod's namespace, owned by the step's resource."""
    from kubernetes import client

    namespace = os.environ.get("POD_NAMESPACE", "default")
    owner = os.environ.get(OWNER_ENV)
    body = result_config_map(name, result, json.loads(owner) if owner else None)
    put_config_map(client.CoreV1Api(api_client()), namespace, body)


def write_records(result: str, matrix: str, cell: str, by_profile: dict[str, list[dict[str, Any]]]) -> str | None:
    """Keep the cell's per-request records in ConfigMaps beside its result; returns why not, or None when kept.

    The records are a by-product: failing to keep them costs the user the raw data, not the measurement, so
    the step still writes its result and the operator reports the reason as an event.
    """
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    if not any(by_profile.values()):
        return None
    owner = os.environ.get(OWNER_ENV)
    job = result.removesuffix("-result")
    try:
        bodies = record_maps(
            job, matrix, cell, pack_records(by_profile), json.loads(owner) if owner else None, secrets.token_hex(8)
        )
    except RecordsTooLarge as exc:
        return str(exc)
    namespace = os.environ.get("POD_NAMESPACE", "default")
    core = client.CoreV1Api(api_client())
    try:
        for body in bodies:
            put_config_map(core, namespace, body)
    except client.ApiException as exc:
        return f"cannot write ConfigMap {body['metadata']['name']}: {exc.status} {exc.reason}"
    except (HTTPError, OSError) as exc:
        return f"cannot write ConfigMap {body['metadata']['name']}: {exc}"
    return None
