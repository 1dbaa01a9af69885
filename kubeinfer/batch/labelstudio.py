"""Label Studio pre-annotation: label configs to task types, prompts from task data, replies to `result`s.

Pure functions with no web framework: the gateway's Label Studio router (kubeinfer.gateway.labelstudio)
calls them for `/predict` and for webhook batches alike, so both paths give the same predictions.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import xml.etree.ElementTree as ET  # noqa: S405 - see parse_label_config
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Label Studio's object tags whose `value="$field"` names the task data field a control labels.
_FIELD_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")

CLASSIFY_TEMPLATE = (
    "Classify the following text into exactly one of these categories: {labels}.\n"
    "Text: {text}\n"
    "Answer with the category name only."
)
FREE_TEXT_TEMPLATE = "{text}"

#: Labels put into a template for `{labels}`; task data fields of the same name lose to it.
LABELS_FIELD = "labels"


class LabelConfigError(ValueError):
    """The project's labeling config has nothing this backend can predict."""


class TemplateError(ValueError):
    """A prompt template that cannot be rendered for a task."""


class ProjectConfigError(ValueError):
    """Bad per-project configuration (the `extra_params` of the ML backend connection)."""


@dataclass(frozen=True)
class TaskType:
    """What to predict: one control (`from_name`) on one object (`to_name`) of the labeling config."""

    kind: Literal["classification", "free_text"]
    from_name: str
    to_name: str
    #: The task data field the object shows (`<Text value="$text"/>` gives "text"); None when not a `$field`.
    data_field: str | None
    labels: tuple[str, ...] = ()


def parse_label_config(xml: str) -> TaskType:
    """The first `<Choices>` (classification) or, failing that, the first `<TextArea>` (free text).

    The config comes from the Label Studio project the API key's owner connected, and Python's expat
    neither fetches external entities nor expands entity bombs (expat >= 2.4), so ElementTree is safe here.
    """
    try:
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config is not valid XML: {exc}") from None
    objects = {el.get("name"): el for el in root.iter() if el.get("name") and el.get("value")}
    for tag, kind in (("Choices", "classification"), ("TextArea", "free_text")):
        control = next(root.iter(tag), None)
        if control is None:
            continue
        from_name, to_name = control.get("name"), control.get("toName")
        if not from_name or not to_name:
            raise LabelConfigError(f"<{tag}> needs both name and toName attributes")
        target = objects.get(to_name.split(",")[0])
        if target is None:
            raise LabelConfigError(f"<{tag} toName='{to_name}'> names no object tag with a value in the config")
        match = _FIELD_REF.match(target.get("value", ""))
        labels: tuple[str, ...] = ()
        if kind == "classification":
            labels = tuple(v for c in control.iter("Choice") if (v := c.get("value")))
            if not labels:
                raise LabelConfigError(f"<Choices name='{from_name}'> has no <Choice value=...> children")
        return TaskType(kind, from_name, to_name, match.group(1) if match else None, labels)  # type: ignore[arg-type]
    raise LabelConfigError("label config has no <Choices> or <TextArea> control; this backend predicts only those")


def template_fields(template: str) -> list[str]:
    """The `{name}` fields of a template; attribute, index and conversion syntax is refused."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"prompt template is malformed: {exc} (write literal braces as {{{{ and }}}})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or spec or conversion:
            raise TemplateError(f"prompt template field '{{{name}}}' must be a plain task data field name")
        fields.append(name)
    return fields


def render_prompt(template: str, data: dict[str, Any], task_type: TaskType) -> str:
    """The template with `{field}` replaced by the task's data and `{labels}` by the choices."""
    values: dict[str, str] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if task_type.labels:
        values[LABELS_FIELD] = ", ".join(task_type.labels)
    missing = [f for f in template_fields(template) if f not in values]
    if missing:
        have = ", ".join(sorted(values)) or "none"
        raise TemplateError(f"prompt template uses {{{missing[0]}}} but the task has only: {have}")
    return template.format_map(values)


def _norm(text: str) -> str:
    return " ".join(text.split()).strip(" \t\n.,;:!?\"'`*").casefold()


def match_choice(reply: str, labels: tuple[str, ...]) -> str | None:
    """The label the reply names, compared without case, surrounding spaces, quotes or punctuation.

    The whole reply is tried first, then its first line, so "Positive\\nbecause..." still matches.
    """
    by_norm = {_norm(label): label for label in labels}
    first_line = reply.strip().split("\n", 1)[0]
    for candidate in (reply, first_line):
        found = by_norm.get(_norm(candidate))
        if found is not None:
            return found
    return None


def prediction(reply: str, task_type: TaskType, model_version: str) -> dict[str, Any]:
    """One Label Studio prediction (`result`, `score`, `model_version`) from the model's reply.

    A classification reply naming no label gives the no-choice result: an empty `choices` list, score 0,
    and the raw reply kept in the region's `meta.text`, so an annotator sees what the model said.
    """
    region: dict[str, Any] = {"from_name": task_type.from_name, "to_name": task_type.to_name}
    if task_type.kind == "free_text":
        region |= {"type": "textarea", "value": {"text": [reply.strip()]}}
        return {"result": [region], "model_version": model_version}
    label = match_choice(reply, task_type.labels)
    if label is None:
        region |= {"type": "choices", "value": {"choices": []}, "meta": {"text": [reply]}}
        return {"result": [region], "score": 0.0, "model_version": model_version}
    region |= {"type": "choices", "value": {"choices": [label]}}
    return {"result": [region], "score": 1.0, "model_version": model_version}


def choice_grammar(labels: tuple[str, ...]) -> str:
    """A GBNF grammar (llama-server's `grammar`) that lets the model answer only one of the labels."""
    return "root ::= " + " | ".join(json.dumps(label) for label in labels)


class ProjectConfig(BaseModel):
    """Per-project settings, sent by Label Studio as the ML backend connection's `extra_params`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Served model; default: the gateway's model")
    prompt: str | None = Field(default=None, description="Prompt template with {field} task data and {labels}")
    max_tokens: int | None = Field(default=None, gt=0, le=4096, description="Default 16 (choices) or 256 (text)")
    constrain: bool = Field(default=True, description="Classification: a grammar limits the reply to the labels")
    label_studio_url: str | None = Field(default=None, description="Where predictions are written back")
    label_studio_api_key: str | None = Field(default=None, description="Token used to write predictions back")


def parse_project_config(extra_params: Any) -> ProjectConfig:
    if extra_params is None or extra_params == "":
        return ProjectConfig()
    if isinstance(extra_params, str):
        try:
            extra_params = json.loads(extra_params)
        except ValueError as exc:
            raise ProjectConfigError(f"extra_params is not valid JSON: {exc}") from None
    if not isinstance(extra_params, dict):
        raise ProjectConfigError(f"extra_params must be a JSON object, got {type(extra_params).__name__}")
    try:
        return ProjectConfig.model_validate(extra_params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        allowed = ", ".join(ProjectConfig.model_fields)
        raise ProjectConfigError(f"extra_params.{where}: {first['msg']} (allowed keys: {allowed})") from None


@dataclass(frozen=True)
class Plan:
    """How every task of one project is turned into one chat completion request."""

    task_type: TaskType
    model: str
    template: str
    max_tokens: int
    constrain: bool

    @property
    def model_version(self) -> str:
        """Names the model; the digest changes with the prompt, so Label Studio re-predicts after an edit."""
        spec = json.dumps([self.template, self.max_tokens, self.constrain, self.task_type.labels])
        return f"kubeinfer-{self.model}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"

    def request_body(self, data: dict[str, Any]) -> dict[str, Any]:
        prompt = render_prompt(self.template, data, self.task_type)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        if self.task_type.kind == "classification" and self.constrain:
            body["grammar"] = choice_grammar(self.task_type.labels)
        return body


def make_plan(config: ProjectConfig, label_config: str, default_model: str, served: set[str]) -> Plan:
    """Checks the config against the label config and the served models; raises a specific error when wrong."""
    task_type = parse_label_config(label_config)
    model = config.model or default_model
    if model not in served:
        raise ProjectConfigError(
            f"model '{model}' is not served by this gateway; it serves: {', '.join(sorted(served))}"
        )
    if config.prompt is not None:
        template = config.prompt
    elif task_type.data_field is None:
        raise ProjectConfigError(
            f"<{task_type.to_name}> does not show a $field of the task data: set extra_params.prompt"
        )
    else:
        base = CLASSIFY_TEMPLATE if task_type.kind == "classification" else FREE_TEXT_TEMPLATE
        template = base.replace("{text}", "{" + task_type.data_field + "}")
    template_fields(template)
    max_tokens = config.max_tokens or (16 if task_type.kind == "classification" else 256)
    return Plan(task_type, model, template, max_tokens, config.constrain)


def reply_text(body: Any) -> str:
    """The assistant's text from a chat completion body; raises ValueError when the body has none."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("the engine's reply has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise ValueError("the engine's reply content is not text")
    return content


def project_id(value: Any) -> int:
    """Label Studio's project id from `/setup` and `/predict` ("12.1700000000") or a webhook's project object."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        raise ProjectConfigError("project must be a Label Studio project id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
        return int(value.split(".")[0])
    raise ProjectConfigError(f"project must be a Label Studio project id like '12.1700000000', got {value!r}")
