"""Label Studio pre-annotation as pure functions: label configs, prompts, replies to results, project config."""

from __future__ import annotations

import base64

import pytest

from kubeinfer.batch.labelstudio import (
    LabelConfigError,
    ProjectConfig,
    ProjectConfigError,
    TemplateError,
    choice_grammar,
    make_plan,
    match_choice,
    parse_label_config,
    parse_project_config,
    prediction,
    project_id,
    render_prompt,
    reply_text,
)
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.labelstudio.auth import api_key

SENTIMENT = """
<View>
  <Text name="review" value="$review"/>
  <Choices name="sentiment" toName="review" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Very Neutral"/>
  </Choices>
</View>"""
SUMMARY = """<View><Text name="text" value="$text"/><TextArea name="summary" toName="text"/></View>"""


def test_choices_config_is_classification_with_its_labels() -> None:
    task_type = parse_label_config(SENTIMENT)
    assert task_type.kind == "classification"
    assert (task_type.from_name, task_type.to_name, task_type.data_field) == ("sentiment", "review", "review")
    assert task_type.labels == ("Positive", "Negative", "Very Neutral")


def test_textarea_config_is_free_text() -> None:
    task_type = parse_label_config(SUMMARY)
    assert (task_type.kind, task_type.from_name, task_type.data_field, task_type.labels) == (
        "free_text",
        "summary",
        "text",
        (),
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("<View><Text name='t' value='$t'/>", "not valid XML"),
        ("<View><Text name='t' value='$t'/></View>", "no <Choices> or <TextArea>"),
        ("<View><Text name='t' value='$t'/><Choices name='c' toName='t'/></View>", "no <Choice value"),
        ("<View><Choices name='c' toName='missing'><Choice value='a'/></Choices></View>", "names no object tag"),
        ("<View><Text name='t' value='$t'/><TextArea name='s'/></View>", "needs both name and toName"),
    ],
)
def test_unusable_label_configs_are_refused_with_the_reason(config: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(config)


def test_prompt_renders_task_fields_and_labels() -> None:
    task_type = parse_label_config(SENTIMENT)
    prompt = render_prompt("{labels}|{review}|{stars}", {"review": "great", "stars": 5}, task_type)
    assert prompt == "Positive, Negative, Very Neutral|great|5"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{text}", r"uses \{text\} but the task has only: labels, review"),
        ("{review.__class__}", "plain task data field"),
        ("{review!r}", "plain task data field"),
        ("{review:>10}", "plain task data field"),
        ("{review", "malformed"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render_prompt(template, {"review": "x"}, parse_label_config(SENTIMENT))


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Positive", "Positive"),
        ("  negative. ", "Negative"),
        ('"very   neutral"', "Very Neutral"),
        ("POSITIVE\nbecause it says so", "Positive"),
        ("It is positive", None),
        ("", None),
    ],
)
def test_choice_matching_ignores_case_spaces_and_punctuation(reply: str, label: str | None) -> None:
    assert match_choice(reply, ("Positive", "Negative", "Very Neutral")) == label


def test_matched_reply_becomes_a_choices_result() -> None:
    pred = prediction("negative", parse_label_config(SENTIMENT), "kubeinfer-m-1")
    assert pred == {
        "result": [
            {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Negative"]}}
        ],
        "score": 1.0,
        "model_version": "kubeinfer-m-1",
    }


def test_unmatched_reply_gives_the_no_choice_result_with_the_raw_text() -> None:
    pred = prediction("I cannot tell", parse_label_config(SENTIMENT), "v")
    assert pred["score"] == 0.0
    assert pred["result"][0]["value"] == {"choices": []}
    assert pred["result"][0]["meta"] == {"text": ["I cannot tell"]}


def test_free_text_reply_becomes_a_textarea_result() -> None:
    pred = prediction(" A summary. ", parse_label_config(SUMMARY), "v")
    assert pred["result"] == [
        {"from_name": "summary", "to_name": "text", "type": "textarea", "value": {"text": ["A summary."]}}
    ]
    assert "score" not in pred


def test_plan_defaults_and_request_body() -> None:
    plan = make_plan(ProjectConfig(), SENTIMENT, "smollm2-135m", {"smollm2-135m"})
    body = plan.request_body({"review": "Loved it"})
    assert body["model"] == "smollm2-135m"
    assert (body["max_tokens"], body["temperature"]) == (16, 0)
    assert "Text: Loved it" in body["messages"][0]["content"]
    assert body["grammar"] == choice_grammar(("Positive", "Negative", "Very Neutral"))
    assert plan.model_version.startswith("kubeinfer-smollm2-135m-")
    other = make_plan(ProjectConfig(prompt="{review}"), SENTIMENT, "smollm2-135m", {"smollm2-135m"})
    assert other.model_version != plan.model_version


def test_free_text_plan_has_no_grammar() -> None:
    plan = make_plan(ProjectConfig(max_tokens=8), SUMMARY, "m", {"m"})
    assert "grammar" not in plan.request_body({"text": "hi"})
    assert plan.max_tokens == 8


def test_unknown_model_is_refused_naming_the_served_ones() -> None:
    with pytest.raises(ProjectConfigError, match="model 'gpt-9' is not served by this gateway; it serves: a, b"):
        make_plan(ProjectConfig(model="gpt-9"), SENTIMENT, "a", {"a", "b"})


def test_object_without_a_field_needs_a_prompt() -> None:
    config = "<View><Text name='t' value='hello'/><TextArea name='s' toName='t'/></View>"
    with pytest.raises(ProjectConfigError, match="set extra_params.prompt"):
        make_plan(ProjectConfig(), config, "m", {"m"})
    assert make_plan(ProjectConfig(prompt="Say hi"), config, "m", {"m"}).template == "Say hi"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1], "must be a JSON object"),
        ({"modle": "x"}, r"extra_params.modle: Extra inputs are not permitted \(allowed keys: model"),
        ({"max_tokens": 0}, "extra_params.max_tokens"),
    ],
)
def test_bad_project_config_is_refused(extra: object, message: str) -> None:
    with pytest.raises(ProjectConfigError, match=message):
        parse_project_config(extra)


def test_project_config_from_json_text_or_nothing() -> None:
    assert parse_project_config('{"max_tokens": 4}').max_tokens == 4
    assert parse_project_config(None) == ProjectConfig()


@pytest.mark.parametrize(("value", "expected"), [("12.1700000000", 12), (7, 7), ({"id": 3}, 3), ("5", 5)])
def test_project_id_forms(value: object, expected: int) -> None:
    assert project_id(value) == expected


@pytest.mark.parametrize("value", [None, "abc", True, {"title": "x"}, "1.2.3"])
def test_bad_project_ids_are_refused(value: object) -> None:
    with pytest.raises(ProjectConfigError, match="project must be a Label Studio project id"):
        project_id(value)


def test_reply_text_needs_message_content() -> None:
    assert reply_text({"choices": [{"message": {"content": "x"}}]}) == "x"
    with pytest.raises(ValueError, match="no choices"):
        reply_text({"error": "boom"})


def test_api_key_from_bearer_or_basic_password() -> None:
    assert api_key("Bearer sk-1") == "sk-1"
    assert api_key("Basic " + base64.b64encode(b"anyone:sk-2").decode()) == "sk-2"
    assert api_key(None) is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic !!!", "not valid base64"),
        ("Basic " + base64.b64encode(b"user-only").decode(), "password"),
        ("Token abc", "unsupported Authorization scheme 'Token'"),
    ],
)
def test_bad_auth_headers_are_refused(header: str, message: str) -> None:
    with pytest.raises(ApiError, match=message):
        api_key(header)
