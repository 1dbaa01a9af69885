"""Generate CustomResourceDefinitions from the pydantic models: the checked-in `crds/` must match.

Pydantic emits JSON Schema (2020-12); Kubernetes wants a *structural* OpenAPI v3.0 schema: no `$ref`,
`nullable` instead of `anyOf` with null, boolean `exclusiveMinimum`, and maps or free-form objects marked
explicitly. Cross-field rules travel as CEL in `x-kubernetes-validations` (declared on the models with
`json_schema_extra`), so the API server rejects what pydantic would reject.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubeinfer.resources.batch_job import BatchJobSpec, BatchJobStatus
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, BenchmarkMatrixStatus
from kubeinfer.resources.model_install import ModelInstallSpec, ModelInstallStatus
from kubeinfer.resources.names import (
    BATCH_KIND,
    BATCH_PLURAL,
    INSTALL_KIND,
    INSTALL_PLURAL,
    MATRIX_KIND,
    MATRIX_PLURAL,
    VERSION,
)
from kubeinfer.resources.names import GROUP as API_GROUP

_DROP = {"title", "$defs", "discriminator", "propertyNames"}


@dataclass(frozen=True)
class CrdInfo:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, str]] = field(default_factory=list)


CRDS = [
    CrdInfo(
        kind=MATRIX_KIND,
        plural=MATRIX_PLURAL,
        short_names=["bm", "matrix"],
        spec=BenchmarkMatrixSpec,
        status=BenchmarkMatrixStatus,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Done", "type": "integer", "jsonPath": ".status.cellsDone"},
            {"name": "Cells", "type": "integer", "jsonPath": ".status.cellsTotal"},
            {"name": "Best", "type": "string", "jsonPath": ".status.best"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    CrdInfo(
        kind=INSTALL_KIND,
        plural=INSTALL_PLURAL,
        short_names=["mi"],
        spec=ModelInstallSpec,
        status=ModelInstallStatus,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Quant", "type": "string", "jsonPath": ".spec.quantization"},
            {"name": "Serving", "type": "string", "jsonPath": ".status.serving.quantization"},
            {"name": "Ready", "type": "integer", "jsonPath": ".status.serving.readyReplicas"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    CrdInfo(
        kind=BATCH_KIND,
        plural=BATCH_PLURAL,
        short_names=["bj"],
        spec=BatchJobSpec,
        status=BatchJobStatus,
        columns=[
            {"name": "Status", "type": "string", "jsonPath": ".status.status"},
            {"name": "Model", "type": "string", "jsonPath": ".status.model"},
            {"name": "Completed", "type": "integer", "jsonPath": ".status.requestCounts.completed"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.requestCounts.failed"},
            {"name": "Total", "type": "integer", "jsonPath": ".status.requestCounts.total"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
]


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline refs and rewrite a pydantic JSON Schema node into Kubernetes' structural dialect."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) == 1:
            node = structural({**non_null[0], **rest}, defs)
            if len(non_null) < len(variants):
                node["nullable"] = True
            return node
        return {**_free_form(), **({"description": rest["description"]} if "description" in rest else {})}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or (key == "default" and isinstance(value, dict | list)):
            continue
        if key == "properties":
            out[key] = {name: structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue
            out[key] = structural(value, defs) if isinstance(value, dict) and value else _free_form()
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "type" not in out and "enum" in out:
        out["type"] = "string"
    if "type" not in out:
        return {**_free_form(), **{k: v for k, v in out.items() if k == "description"}}
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _free_form() -> dict[str, Any]:
    return {"x-kubernetes-preserve-unknown-fields": True}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def build_crd(info: CrdInfo) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(info.spec),
            "status": model_schema(info.status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": ["kubeinfer"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render(info: CrdInfo) -> str:
    header = "# Generated from kubeinfer/resources by `make crds`; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(info), sort_keys=False, width=120)


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for info in CRDS:
        path = out_dir / f"{API_GROUP}_{info.plural}.yaml"
        path.write_text(render(info))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(written_path)
