"""`helm test`: one chat completion and a one-line batch through the gateway, with a key from the API-key file.

Run by the chart's test Pod (templates/tests/gateway-test.yaml) as `python -c`, in the kubeinfer image (httpx is a
dependency of the package). Environment: GATEWAY_URL (`http://<service>.<namespace>:<port>/v1`), MODEL,
API_KEYS_FILE (`key=project` lines, the gateway's own format), TIMEOUT_SECONDS, BATCH_MARK (the batch's
`metadata.helm-test`, which the uninstall hook looks for). Each step retries until the deadline while the model is
still being installed or started; the first answer that is wrong fails at once. Exit 0 when both answers check out.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx

#: Answers that mean "not yet": the model is installing, starting or scaling up from zero.
RETRY_STATUS = {404, 502, 503, 504}
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def fail(message: str) -> NoReturn:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def first_key(path: Path) -> str:
    for item in path.read_text().replace(",", "\n").splitlines():
        key, sep, _project = item.split("#", 1)[0].strip().partition("=")
        if sep and key.strip():
            return key.strip()
    fail(f"{path} holds no key=project line")


def remaining(deadline: float, step: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        fail(f"{step}: no answer within the deadline (TIMEOUT_SECONDS)")
    return left


def chat(client: httpx.Client, model: str, deadline: float) -> dict[str, Any]:
    """POST /chat/completions until the model answers; 404/5xx and refused connections mean it is not up yet."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    last = "none yet"
    while True:
        remaining(deadline, f"chat completion (last answer: {last})")
        try:
            response = client.post("/chat/completions", json=body)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return dict(response.json())
            if response.status_code not in RETRY_STATUS:
                fail(f"chat completion: HTTP {response.status_code}: {response.text[:500]}")
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        time.sleep(2)


def check_chat(answer: dict[str, Any], model: str) -> None:
    choices = answer.get("choices") or []
    if answer.get("object") != "chat.completion" or len(choices) != 1:
        fail(f"chat completion: unexpected answer {json.dumps(answer)[:500]}")
    if not isinstance(choices[0].get("message", {}).get("content"), str):
        fail(f"chat completion: no message content in {json.dumps(answer)[:500]}")
    if (answer.get("usage") or {}).get("completion_tokens", 0) < 1:
        fail(f"chat completion: no completion tokens in {json.dumps(answer)[:500]}")
    print(f"chat completion: {model} answered {choices[0]['message']['content']!r}", flush=True)


def run_batch(client: httpx.Client, model: str, mark: str, deadline: float) -> None:
    custom_id = "helm-test-1"
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
    }
    upload = client.post(
        "/files",
        files={"file": ("helm-test.jsonl", json.dumps(line) + "\n", "application/jsonl")},
        data={"purpose": "batch"},
    )
    if upload.status_code != 200:
        fail(f"file upload: HTTP {upload.status_code}: {upload.text[:500]}")
    created = client.post(
        "/batches",
        json={
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"helm-test": mark},
        },
    )
    if created.status_code != 200:
        fail(f"batch create: HTTP {created.status_code}: {created.text[:500]}")
    batch = created.json()
    print(f"batch {batch['id']}: {batch['status']}", flush=True)
    while batch["status"] not in TERMINAL:
        remaining(deadline, f"batch {batch['id']} (last status {batch['status']})")
        time.sleep(2)
        polled = client.get(f"/batches/{batch['id']}")
        if polled.status_code != 200:
            fail(f"batch {batch['id']}: HTTP {polled.status_code}: {polled.text[:500]}")
        if polled.json()["status"] != batch["status"]:
            print(f"batch {batch['id']}: {polled.json()['status']}", flush=True)
        batch = polled.json()
    counts = batch.get("request_counts") or {}
    if batch["status"] != "completed" or counts != {"total": 1, "completed": 1, "failed": 0}:
        fail(f"batch {batch['id']}: {json.dumps(batch)[:1500]}")
    output = client.get(f"/files/{batch['output_file_id']}/content")
    if output.status_code != 200:
        fail(f"batch output: HTTP {output.status_code}: {output.text[:500]}")
    lines = [json.loads(text) for text in output.text.splitlines() if text.strip()]
    if len(lines) != 1 or lines[0].get("custom_id") != custom_id:
        fail(f"batch output: expected one line for {custom_id}, got {output.text[:1000]}")
    response = lines[0].get("response") or {}
    if response.get("status_code") != 200 or not (response.get("body") or {}).get("choices"):
        fail(f"batch output: the request did not succeed: {output.text[:1000]}")
    print(f"batch {batch['id']}: completed, 1 of 1 requests answered", flush=True)


def main() -> None:
    base = os.environ["GATEWAY_URL"].rstrip("/")
    model = os.environ["MODEL"]
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "280"))
    headers = {"Authorization": f"Bearer {first_key(Path(os.environ['API_KEYS_FILE']))}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        check_chat(chat(client, model, deadline), model)
        run_batch(client, model, os.environ.get("BATCH_MARK", "helm-test"), deadline)
    print("ok", flush=True)


if __name__ == "__main__":
    main()
