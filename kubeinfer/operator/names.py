"""Names and labels of the objects the operator creates: deterministic, so a restart finds them again."""

from __future__ import annotations

import hashlib
import re

GROUP = "kubeinfer.dev"
VERSION = "v1alpha1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeinfer"}
MATRIX_LABEL = f"{GROUP}/matrix"
CELL_LABEL = f"{GROUP}/cell"
COMPONENT_LABEL = f"{GROUP}/component"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def child_name(matrix: str, cell_key: str, component: str, limit: int = 52) -> str:
    """`<matrix>-<cell>-<component>`, shortened with a hash when longer than `limit`.

    52 leaves room for the suffix the Job controller adds to pod names within the 63-character limit.
    """
    name = f"{slug(matrix)}-{slug(cell_key)}-{component}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(component) - 10]}-{digest}-{component}"


def child_labels(matrix: str, cell_key: str, component: str) -> dict[str, str]:
    return {**MANAGED_BY, MATRIX_LABEL: slug(matrix)[:63], CELL_LABEL: slug(cell_key)[:63], COMPONENT_LABEL: component}
