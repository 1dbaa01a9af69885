"""ModelInstalls of a namespace for the console: list them, and create one from the install form's fields.

The form's fields become a `ModelInstall` validated by the same pydantic model that `kubeinfer` uses for
manifests (and from which the CRD's schema is generated), so the form refuses what `kubectl apply` would;
each problem is reported against the form field it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubeinfer.cluster.access import REQUEST_TIMEOUT, custom_objects, project_of, visible_to
from kubeinfer.kube.errors import Conflict, Invalid, call
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.resources.names import GROUP, INSTALL_PLURAL, PROJECT_LABEL, VERSION

PLURAL = INSTALL_PLURAL
SOURCES = ("pypi", "hf", "url")
#: A Kubernetes label value, which the project name becomes.
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class InstallSummary:
    """What the models page shows of one ModelInstall."""

    name: str
    model: str
    phase: str
    source: str
    quantization: str
    quantizations: list[str]
    size_bytes: int | None
    replicas: int | None
    ready_replicas: int
    endpoints: list[str]
    project: str | None
    message: str | None
    bytes_done: int | None = None
    bytes_total: int | None = None


def _source_text(source: dict[str, Any]) -> str:
    if "pypi" in source:
        return f"pypi:{source['pypi']}"
    if "hf" in source:
        hf = source["hf"]
        return f"hf:{hf.get('repo')}/{hf.get('file')}"
    if "url" in source:
        return str(source["url"].get("url"))
    if "pvc" in source:
        return f"pvc:{source['pvc'].get('claimName')}/{source['pvc'].get('path')}"
    return "?"


def summarize(body: dict[str, Any]) -> InstallSummary:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    serving, files = status.get("serving") or {}, status.get("files") or []
    progress = status.get("progress") or {}
    wanted = spec.get("serving")
    return InstallSummary(
        name=body["metadata"]["name"],
        model=spec.get("model") or body["metadata"]["name"],
        phase=str(status.get("phase") or "Pending"),
        source=_source_text(spec.get("source") or {}),
        quantization=str(serving.get("quantization") or spec.get("quantization") or ""),
        quantizations=[str(f.get("quantization")) for f in files],
        size_bytes=sum(int(f.get("sizeBytes") or 0) for f in files) if files else None,
        replicas=int(wanted.get("replicas", 1)) if isinstance(wanted, dict) else None,
        ready_replicas=int(serving.get("readyReplicas") or 0),
        endpoints=[str(e) for e in serving.get("endpoints") or []],
        project=project_of(body),
        message=status.get("message"),
        bytes_done=progress.get("bytesDone"),
        bytes_total=progress.get("bytesTotal"),
    )


def list_installs(namespace: str, project: str) -> list[InstallSummary]:
    """The ModelInstalls `project` may see, by name."""
    listed = call(
        lambda: custom_objects().list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
        ),
        f"list ModelInstalls in namespace {namespace}",
    )
    items = sorted((i for i in listed["items"] if visible_to(i, project)), key=lambda i: i["metadata"]["name"])
    return [summarize(item) for item in items]


@dataclass
class InstallForm:
    """The install form's fields, as typed: every value a string, blank when left empty."""

    name: str = ""
    source: str = "pypi"
    location: str = ""
    file: str = ""
    sha256: str = ""
    quantization: str = ""
    replicas: str = ""

    def stripped(self) -> InstallForm:
        return InstallForm(**{key: value.strip() for key, value in vars(self).items()})


class InvalidInstall(ValueError):
    """The form's problems by field name (`form` for those of no one field)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


#: Friendlier words for a value that does not match a field's pattern, by form field.
PATTERN_HINTS = {
    "name": "use lowercase letters, digits and '-', starting and ending with a letter or digit",
    "location": {
        "pypi": "the name of a model bundled in kubeinfer's package, such as smollm2-135m",
        "hf": "a Hugging Face repository as org/name",
        "url": "an http:// or https:// URL",
    },
    "sha256": "64 lowercase hexadecimal digits",
}

REQUIRED = {
    "name": "enter a name for the model",
    "quantization": "enter the quantization of the source file (e.g. Q4_K_M, Q8_0, F16)",
}
REQUIRED_BY_SOURCE = {
    "pypi": {"location": "enter the name of a bundled model (e.g. smollm2-135m)"},
    "hf": {"location": "enter the repository as org/name", "file": "enter the GGUF file's name in the repository"},
    "url": {"location": "enter the file's URL", "sha256": "enter the file's sha256: a plain URL carries no checksum"},
}


def _form_field(loc: tuple[int | str, ...]) -> str:
    """The form field that a pydantic error location of the ModelInstall came from."""
    path = [str(part) for part in loc]
    if path[:2] in (["metadata", "name"], ["spec", "model"]):
        return "name"
    if path[:2] == ["spec", "source"]:
        last = path[-1]
        return {"file": "file", "sha256": "sha256"}.get(last, "location" if len(path) > 2 else "source")
    if path[:2] == ["spec", "quantization"]:
        return "quantization"
    if path[:2] == ["spec", "serving"]:
        return "replicas"
    return "form"


def _message(form: InstallForm, error: dict[str, Any], where: str) -> str:
    if error["type"] == "string_pattern_mismatch":
        if where == "quantization":
            return f"'{form.quantization}' is not a known GGUF quantization name (e.g. Q4_K_M, Q8_0, F16)"
        hint = PATTERN_HINTS.get(where)
        if isinstance(hint, dict):
            hint = hint.get(form.source)
        if hint:
            return str(hint)
    return str(error["msg"]).removeprefix("Value error, ")


def build_install(form: InstallForm, namespace: str, project: str) -> ModelInstall:
    """The ModelInstall the form describes, labelled with `project`; raises InvalidInstall."""
    form = form.stripped()
    errors: dict[str, str] = {}
    if form.source not in SOURCES:
        errors["source"] = f"choose one of {', '.join(SOURCES)}"
    required = REQUIRED | REQUIRED_BY_SOURCE.get(form.source, {})
    errors |= {name: message for name, message in required.items() if not getattr(form, name)}
    replicas: int | None = None
    if form.replicas:
        try:
            replicas = int(form.replicas)
        except ValueError:
            errors["replicas"] = "enter a whole number of server replicas, or leave it empty to only install"
    if not LABEL_VALUE.match(project):
        errors["form"] = f"the project name {project!r} cannot be a Kubernetes label value"
    body = {
        "metadata": {"name": form.name, "namespace": namespace, "labels": {PROJECT_LABEL: project}},
        "spec": {"model": form.name, "source": _source(form), "quantization": form.quantization}
        | ({"serving": {"replicas": replicas}} if replicas is not None else {}),
    }
    try:
        install = ModelInstall.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors():
            where = _form_field(error["loc"])
            errors.setdefault(where, _message(form, dict(error), where))
    if errors:
        raise InvalidInstall(errors)
    return install


def _source(form: InstallForm) -> dict[str, Any]:
    if form.source == "hf":
        return {"hf": {"repo": form.location, "file": form.file} | ({"sha256": form.sha256} if form.sha256 else {})}
    if form.source == "url":
        return {"url": {"url": form.location, "sha256": form.sha256}}
    return {"pypi": form.location}


def create_install(namespace: str, install: ModelInstall) -> None:
    """Create the ModelInstall; a taken name or the API server's own validation raise InvalidInstall."""
    name = install.metadata.name
    try:
        call(
            lambda: custom_objects().create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, install.to_manifest(), _request_timeout=REQUEST_TIMEOUT
            ),
            f"create ModelInstall {name} in namespace {namespace}",
        )
    except Conflict:
        message = f"a ModelInstall named {name} already exists in namespace {namespace}; choose another name"
        raise InvalidInstall({"name": message}) from None
    except Invalid as exc:
        raise InvalidInstall({"form": f"the API server refused the ModelInstall: {_api_message(exc)}"}) from None


def _api_message(exc: Invalid) -> str:
    """The API server's own words, without the `create ModelInstall ...:` prefix the error carries."""
    return str(exc).partition(": ")[2] or str(exc)
