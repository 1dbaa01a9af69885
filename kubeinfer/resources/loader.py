"""Read resource manifests from YAML with errors that name the file, the line or the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix
from kubeinfer.resources.model_install import ModelInstall

T = TypeVar("T", bound=BaseModel)


class ManifestError(ValueError):
    """A manifest that cannot be used; `str()` is a complete message for a person."""


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid {error.title} manifest:"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def parse_document(data: Any, model: type[T], source: str) -> T:
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a mapping with apiVersion, kind, metadata and spec")
    expected_kind = model.model_fields["kind"].default if "kind" in model.model_fields else None
    kind = data.get("kind")
    if expected_kind and kind != expected_kind:
        raise ManifestError(f"{source}: kind is {kind!r}, expected {expected_kind!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(format_validation_error(exc, source)) from None


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}: YAML syntax error{where}: {problem}") from None
    if len(docs) != 1:
        raise ManifestError(f"{path}: expected exactly one YAML document, found {len(docs)}")
    return docs[0]


def load_matrix(path: Path) -> BenchmarkMatrix:
    return parse_document(load_yaml(path), BenchmarkMatrix, str(path))


def load_model_install(path: Path) -> ModelInstall:
    return parse_document(load_yaml(path), ModelInstall, str(path))
