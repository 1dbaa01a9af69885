"""The gateway as a real Label Studio's ML backend: predictions from the real model, by `/predict` and by webhook.

Label Studio 1.23.2 runs from its own venv (hack/label_studio/install.sh) on 127.0.0.1 with SQLite in a
temporary folder (a copy of the database the installer migrated once), analytics, Sentry and the PyPI version
check turned off, so nothing leaves the machine.
It is driven with label-studio-sdk, exactly as a user would; the gateway answers with the session's
real llama-server and SmolLM2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError as LabelStudioError

from kubeinfer.engines.llamacpp_server import LlamaServer, free_port
from kubeinfer.gateway.app import create_app
from kubeinfer.settings import GatewaySettings, Settings
from testbed.served import served, serving_in_thread
from testbed.wait import wait_for

# Label Studio takes seconds to start: make test runs this module, make test-fast does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERSION = "1.23.2"
MODEL = "smollm2-135m"
KEY = "sk-labelstudio"
AUTH = {"Authorization": f"Bearer {KEY}"}
LS_TOKEN = "kubeinfer-test-token-0123456789abcdef"
LABELS = ("Positive", "Negative")
SENTIMENT = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/>
  </Choices>
</View>"""
SUMMARY = """<View><Text name="text" value="$text"/><TextArea name="summary" toName="text"/></View>"""
REVIEWS = [
    "I loved this film, the acting was wonderful.",
    "Terrible service, I will never come back.",
    "Absolutely fantastic experience, highly recommended!",
    "The product broke after one day. Awful.",
    "What a delightful little cafe, great coffee.",
    "Boring, slow and far too long.",
    "My new phone is fast and the battery lasts forever.",
    "The hotel room was dirty and smelled bad.",
    "Best concert I have been to in years.",
    "The food was cold and tasteless.",
]


def tasks(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"text": REVIEWS[(i + offset) % len(REVIEWS)] + f" (#{i + offset})"} for i in range(n)]


@pytest.fixture(scope="module")
def label_studio(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Label Studio per module: installed on first use (cached by version), SQLite in a tmp dir.

    The database starts as a copy of the installer's template, already migrated, so Label Studio skips its
    migrations (about 30 s of CPU); an install without the template leaves them to Label Studio, as before.
    """
    env = {**os.environ, "KUBEINFER_CACHE_DIR": str(settings.cache_dir)}
    install = subprocess.run(
        [str(ROOT / "hack/label_studio/install.sh")], env=env, capture_output=True, text=True, timeout=1800
    )
    assert install.returncode == 0, install.stderr[-3000:]
    installed = settings.cache_dir / "label-studio" / VERSION
    binary = installed / "venv" / "bin" / "label-studio"
    data = tmp_path_factory.mktemp("label-studio")
    database = data / "label_studio.sqlite3"
    template = installed / "template" / database.name
    if template.is_file():
        shutil.copyfile(template, database)
    port = free_port()
    offline = {
        "HOME": str(data),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_DATABASE_NAME": str(database),
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
        # the gateway is on loopback, which Label Studio refuses for ML backends and webhooks by default
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
    }
    log = data / "label-studio.log"
    cmd = [
        str(binary),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data / "data"),
        "--username",
        "annotator@example.com",
        "--password",
        "kubeinfer-test-pass",
        "--user-token",
        LS_TOKEN,
        "--enable-legacy-api-token",
    ]
    url = f"http://127.0.0.1:{port}"
    with served(cmd, url, log, timeout=300, interval=0.2, env={**os.environ, **offline}):
        yield url


@pytest.fixture(scope="module")
def gateway_url(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gateway = GatewaySettings(data_dir=tmp_path_factory.mktemp("gateway"), api_keys=f"{KEY}=labeling", model=MODEL)
    app = create_app(Settings(gateway=gateway), engine_url=llama_server.base_url)
    with serving_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def ls(label_studio: str) -> LabelStudio:
    return LabelStudio(base_url=label_studio, api_key=LS_TOKEN)


def connect(ls: LabelStudio, gateway_url: str, project: int, **extra: Any) -> Any:
    """The gateway as the project's ML backend, authenticated with the API key as basic auth password."""
    return ls.ml.create(
        project=project,
        url=f"{gateway_url}/labelstudio",
        title="kubeinfer",
        auth_method="BASIC_AUTH",
        basic_auth_user="label-studio",
        basic_auth_pass=KEY,
        extra_params=extra or None,
    )


def webhook_job(gateway_url: str, job_id: str) -> dict[str, Any]:
    listed = httpx.get(f"{gateway_url}/labelstudio/jobs", headers=AUTH).json()["data"]
    return next(j for j in listed if j["id"] == job_id)


def predictions(ls: LabelStudio, project: int) -> list[Any]:
    return list(ls.predictions.list(project=project))


def assert_valid_choice(pred: Any) -> None:
    assert pred.model_version.startswith(f"kubeinfer-{MODEL}-"), pred.model_version
    (region,) = pred.result
    assert (region["from_name"], region["to_name"], region["type"]) == ("sentiment", "text", "choices")
    choices = region["value"]["choices"]
    if choices:
        assert len(choices) == 1, choices
        assert choices[0] in LABELS, choices
    else:  # the documented no-choice result
        assert pred.score == 0.0, region
        assert region["meta"]["text"], region


def test_label_studio_predict_gives_20_predictions_from_the_model(ls: LabelStudio, gateway_url: str) -> None:
    project = ls.projects.create(title="sentiment via /predict", label_config=SENTIMENT)
    ls.projects.import_tasks(project.id, request=tasks(20))
    backend = connect(ls, gateway_url, project.id, max_tokens=8)
    assert ls.ml.get(backend.id).state == "CO", ls.ml.get(backend.id).error_message

    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})

    found = wait_for(lambda: (p := predictions(ls, project.id)) and len(p) >= 20 and p, timeout=300, interval=0.25)
    assert len(found) == 20
    assert len({p.task for p in found}) == 20
    for pred in found:
        assert_valid_choice(pred)
    assert any(pred.result[0]["value"]["choices"] for pred in found), "the model matched no label at all"


def test_webhook_batch_writes_one_prediction_per_task(ls: LabelStudio, gateway_url: str) -> None:
    project = ls.projects.create(title="sentiment via webhook", label_config=SENTIMENT)
    connect(ls, gateway_url, project.id)
    ls.webhooks.create(
        project=project.id,
        url=f"{gateway_url}/labelstudio/webhook",
        actions=["TASKS_CREATED"],
        send_payload=True,
        headers={"Authorization": f"Bearer {KEY}"},
    )
    ls.projects.import_tasks(project.id, request=tasks(20, offset=3))

    found = wait_for(lambda: (p := predictions(ls, project.id)) and len(p) >= 20 and p, timeout=300, interval=0.25)
    assert len({p.task for p in found}) == 20
    for pred in found:
        assert_valid_choice(pred)
    (listed,) = httpx.get(f"{gateway_url}/labelstudio/jobs", headers=AUTH).json()["data"]
    job = wait_for(lambda: (j := webhook_job(gateway_url, listed["id"]))["status"] == "completed" and j)
    assert (job["written"], job["skipped"], job["failed"]) == (20, 0, 0), job
    assert job["batch_id"].startswith("batch-")

    # delivered again: the same job answers and no batch starts; a webhook over tasks that already hold this
    # model version's predictions runs a batch but writes nothing
    task_ids = sorted(p.task for p in found)
    again = {"action": "TASKS_CREATED", "project": {"id": project.id}, "tasks": [{"id": t} for t in task_ids]}
    replay = httpx.post(f"{gateway_url}/labelstudio/webhook", json=again, headers=AUTH)
    assert replay.status_code == 201, replay.text
    assert replay.json()["duplicate"] is True
    subset = {**again, "tasks": again["tasks"][:3]}
    first = httpx.post(f"{gateway_url}/labelstudio/webhook", json=subset, headers=AUTH).json()
    assert first["duplicate"] is False
    job = wait_for(lambda: (j := webhook_job(gateway_url, first["job"]))["status"] == "completed" and j)
    assert (job["written"], job["skipped"], job["failed"]) == (0, 3, 0), job
    assert len(predictions(ls, project.id)) == 20


def test_free_text_project_gets_textarea_predictions(ls: LabelStudio, gateway_url: str) -> None:
    project = ls.projects.create(title="summaries", label_config=SUMMARY)
    ls.projects.import_tasks(project.id, request=tasks(3))
    connect(ls, gateway_url, project.id, prompt="Summarize in a few words: {text}", max_tokens=12)

    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})

    found = wait_for(lambda: (p := predictions(ls, project.id)) and len(p) >= 3 and p, timeout=120, interval=0.25)
    assert len(found) == 3
    for pred in found:
        (region,) = pred.result
        assert (region["from_name"], region["type"]) == ("summary", "textarea")
        assert region["value"]["text"][0].strip(), region
        assert pred.model_version.startswith(f"kubeinfer-{MODEL}-")


def test_unmatched_reply_is_stored_as_the_no_choice_result(ls: LabelStudio, gateway_url: str) -> None:
    """Without the grammar, a prompt that asks for no label gives replies Label Studio stores as no-choice."""
    project = ls.projects.create(title="no choice", label_config=SENTIMENT)
    ls.projects.import_tasks(project.id, request=tasks(2))
    connect(ls, gateway_url, project.id, prompt="Repeat this text: {text}", max_tokens=6, constrain=False)

    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})

    found = wait_for(lambda: (p := predictions(ls, project.id)) and len(p) >= 2 and p, timeout=120, interval=0.25)
    for pred in found:
        assert_valid_choice(pred)
    assert any(not pred.result[0]["value"]["choices"] for pred in found), [p.result for p in found]


def test_unknown_model_in_the_project_config_is_a_clear_error(ls: LabelStudio, gateway_url: str) -> None:
    project = ls.projects.create(title="bad model", label_config=SENTIMENT)
    with pytest.raises(LabelStudioError, match="valid ML backend") as refused:
        connect(ls, gateway_url, project.id, model="gpt-9")
    assert "400 Client Error" in str(refused.value.body)  # Label Studio shows only the status of a failed /setup
    direct = httpx.post(
        f"{gateway_url}/labelstudio/setup",
        json={"project": f"{project.id}.1700000000", "schema": SENTIMENT, "extra_params": {"model": "gpt-9"}},
        auth=("label-studio", KEY),
    )
    assert direct.status_code == 400
    assert "model 'gpt-9' is not served by this gateway; it serves: smollm2-135m" in direct.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("predict", b"{not json", 400, "JSON decode error"),
        ("predict", b'{"label_config": "<View/>"}', 400, "tasks: Field required"),
        (
            "predict",
            b'{"tasks": [{"id": 1}], "label_config": "'
            + SENTIMENT.replace('"', "'").replace("\n", "").encode()
            + b'"}',
            400,
            "tasks[0] has no 'data' object",
        ),
        (
            "predict",
            b'{"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": "<View/>"}',
            400,
            "no <Choices> or <TextArea>",
        ),
        (
            "webhook",
            b'{"action": "PROJECT_CREATED", "project": {"id": 1}}',
            400,
            "unsupported webhook action 'PROJECT_CREATED'",
        ),
        ("webhook", b'{"project": {"id": 1}}', 400, "with an 'action'"),
        (
            "webhook",
            b'{"action": "TASKS_CREATED", "project": {"id": 99999}, "tasks": [{"id": 1}]}',
            404,
            "project 99999 is not connected",
        ),
        ("webhook", b'{"action": "TASKS_CREATED", "project": {"id": 1}, "tasks": []}', 400, "non-empty list"),
        ("setup", b'{"project": "abc", "schema": "<View/>"}', 400, "project must be a Label Studio project id"),
        ("setup", b'{"project": "1.2", "schema": "<View/>", "extra_params": {"modle": 1}}', 400, "extra_params.modle"),
    ],
)
def test_broken_input_gets_a_clear_error(gateway_url: str, path: str, body: bytes, status: int, message: str) -> None:
    response = httpx.post(
        f"{gateway_url}/labelstudio/{path}",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_requests_without_the_api_key_are_refused(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/labelstudio/health").json()["status"] == "UP"
    anonymous = httpx.post(f"{gateway_url}/labelstudio/predict", json={"tasks": [], "label_config": SENTIMENT})
    assert anonymous.status_code == 401
    wrong = httpx.post(f"{gateway_url}/labelstudio/setup", json={}, auth=("label-studio", "sk-wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
