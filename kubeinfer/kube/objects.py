"""Owner references, create-or-adopt, result ConfigMaps and Job deletion: the idioms every reconciler repeats."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubeinfer.resources.names import RESULT_KEY

if TYPE_CHECKING:
    from kubernetes import client


def owner_reference(owner: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    """The reference that lets the garbage collector take a child along when `owner` (a full body) is deleted."""
    meta = owner["metadata"]
    reference = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"]}
    return reference | ({"controller": True, "blockOwnerDeletion": True} if controller else {})


def create_or_adopt(create: Callable[[], object]) -> None:
    """Create an object with a deterministic name; one already there (from before a restart) is adopted."""
    from kubernetes import client

    try:
        create()
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def put_config_map(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> None:
    """Create ConfigMap `body`, or replace the one of that name (a rerun step writes its result again)."""
    from kubernetes import client

    try:
        core.create_namespaced_config_map(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)


def result_config_map(
    name: str, result: dict[str, Any], owner: dict[str, Any] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A ConfigMap holding `result` as JSON under RESULT_KEY, owned by `owner` (an owner reference) if given."""
    metadata: dict[str, Any] = {"name": name, "ownerReferences": [owner] if owner else []}
    if labels:
        metadata["labels"] = labels
    return {"metadata": metadata, "data": {RESULT_KEY: json.dumps(result)}}


def read_json_config_map(
    core: client.CoreV1Api, namespace: str, name: str, key: str = RESULT_KEY
) -> dict[str, Any] | None:
    """The JSON a Job wrote to ConfigMap `name`, or None while it has written nothing."""
    from kubernetes import client

    try:
        config_map = core.read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    parsed: dict[str, Any] = json.loads((config_map.data or {}).get(key, "{}"))
    return parsed


def delete_job(batch: client.BatchV1Api, namespace: str, name: str) -> None:
    """Delete a Job and (in the background) its pods; a Job already gone is fine."""
    from kubernetes import client

    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
