"""vLLM-named latency histograms for llama.cpp traffic: a stream and a batch through the embedded gateway.

Real llama-server (the session's), the gateway in this process, the official `openai` client; `/metrics` is read
over HTTP as Prometheus would.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.gateway.app import create_app
from kubeinfer.settings import GatewaySettings, Settings
from testbed.served import serving_in_thread
from testbed.wait import wait_for

MODEL = "smollm2-135m"
KEY = "sk-vllm-metrics"
BATCH_LINES = 3
SERIES = {"model_name": MODEL, "engine": "llamacpp"}


@pytest.fixture(scope="module")
def gateway_url(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gateway = GatewaySettings(data_dir=tmp_path_factory.mktemp("gateway"), api_keys=f"{KEY}=metrics", model=MODEL)
    app = create_app(Settings(gateway=gateway), engine_url=llama_server.base_url)
    with serving_in_thread(app) as url:
        yield url


def scrape(gateway_url: str) -> dict[str, float]:
    """`/metrics` as `name{labels}` -> value, for the series of the test's model only."""
    page = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            labels = dict(sample.labels)
            if all(labels.pop(k, None) == v for k, v in SERIES.items()):
                found[sample.name + json.dumps(labels, sort_keys=True)] = sample.value
    return found


def test_a_stream_and_a_batch_show_vllm_s_ttft_inter_token_and_e2e_histograms_for_the_model(
    gateway_url: str,
) -> None:
    before = scrape(gateway_url)
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Tell me about the sea."}]
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    lines = [
        {
            "custom_id": f"m{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": f"Count to {i}."}]},
        }
        for i in range(BATCH_LINES)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=300)
    assert done.request_counts is not None
    assert done.request_counts.completed == BATCH_LINES

    after = scrape(gateway_url)

    def grew(series: str) -> float:
        return after.get(series + "{}", 0.0) - before.get(series + "{}", 0.0)

    assert grew("vllm:time_to_first_token_seconds_count") == 1  # the stream; a batch answer shows no first token
    assert grew("vllm:inter_token_latency_seconds_count") >= 1
    assert grew("vllm:time_per_output_token_seconds_count") == grew("vllm:inter_token_latency_seconds_count")
    assert grew("vllm:e2e_request_latency_seconds_count") == 1 + BATCH_LINES
    assert grew("vllm:request_queue_time_seconds_count") == 1 + BATCH_LINES
    assert grew("vllm:request_prompt_tokens_count") == 1 + BATCH_LINES
    assert grew("vllm:generation_tokens_total") > BATCH_LINES
    assert grew("vllm:e2e_request_latency_seconds_sum") > 0
    assert (
        after['vllm:e2e_request_latency_seconds_bucket{"le": "+Inf"}']
        == after["vllm:e2e_request_latency_seconds_count{}"]
    )
    assert after["vllm:num_requests_running{}"] == 0
