"""schemathesis against the live gateway on the session's real llama-server: every operation of its OpenAPI
document, fuzzed with all checks, a fixed seed and a bounded number of examples.

Any 5xx, a response that breaks its schema, a status or content type the document does not list, a request
valid by the document that the gateway rejects, or one invalid by it that the gateway accepts fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from kubeinfer.cli.gateway import openapi_document
from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.openapi import INFERENCE_PATHS
from kubeinfer.settings import GatewaySettings, Settings
from testbed.hub import HubServer
from testbed.served import serving_in_thread

MODEL = "smollm2-135m"
KEY = "sk-fuzz"
#: Fuzzed examples per operation (the coverage and examples phases add their own, bounded by the document).
MAX_EXAMPLES = 25
SEED = 17
#: Tokens an inference request may generate: the engine is real, and 2 busy cores make long answers slow.
MAX_TOKENS = 4
#: schemathesis's statuses that accept a valid request (a 5xx still fails the server-error check).
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


@pytest.fixture(scope="module")
def fuzzed_gateway(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway in this process on a free port, in front of the session's llama-server, with one key."""
    gateway = GatewaySettings(
        data_dir=tmp_path_factory.mktemp("fuzzed-gateway"),
        api_keys=f"{KEY}=fuzz",
        model=MODEL,
        # schemathesis sends thousands of requests with and without the key; none may be throttled
        auth_failures_max=1_000_000,
    )
    app = create_app(Settings(gateway=gateway), engine_url=llama_server.base_url)
    with serving_in_thread(app) as url:
        assert httpx.get(f"{url}/openapi.json").json() == openapi_document()
        yield url


def _schema() -> schemathesis.BaseSchema:
    """The gateway's own document (the live one is checked equal to it): schemathesis 4.32.5's lazy
    `from_fixture` schemas fail under pytest 9 (they set `Function._nodeid`), so the schema is loaded at import
    and each case is sent to the live gateway's URL."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {KEY}"},
            "generation": {"max-examples": MAX_EXAMPLES},
            "request-timeout": 30,
            "operations": [
                # a Label Studio labeling config is XML (and a task's data must fill its variables), which JSON
                # Schema cannot describe: a string valid by the document is rarely a config, and is refused with 400
                {
                    "include-path-regex": "^/labelstudio/(setup|predict)$",
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
                # the inference bodies pass to the engine unchanged: the document promises the OpenAI subset the
                # engine accepts, and llama-server accepts more (token-id prompts, extra fields, other roles)
                {
                    "include-path-regex": "^/v1/(chat/completions|completions|embeddings)$",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
                # 422 is a model the analysis recognises but cannot size (a Hub repo without config.json): the
                # request was valid, the model is not supported, as a 404 is a model that does not exist
                {
                    "include-path": "/api/models/analyze",
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
                },
            ],
        }
    )
    return schemathesis.openapi.from_dict(openapi_document(), config=config)


schema = _schema()


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one loopback Hub serves every example
def test_gateway_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], fuzzed_gateway: str, endpoint: HubServer
) -> None:
    """Every operation, all checks on, with three narrow exceptions (set in `_schema`'s config):

    - `/labelstudio/setup` and `/labelstudio/predict`: no valid-request check. A labeling config is XML, and
      a task's data must fill its variables; JSON Schema describes neither, so a string valid by the document
      is rarely a config and rightly gets 400.
    - the inference routes: no invalid-request check. Their bodies go to the engine unchanged; the document
      promises the OpenAI subset llama-server accepts, and it accepts more (token-id prompts, other roles).
    - `/api/models/analyze`: a 422 counts as accepting a valid request. It is a model the analysis recognises
      but cannot size (a Hub repo without config.json), a state of the model as 404 is its absence.

    Nothing is left out for its side effects: the engine is external (a restart answers 409, and project
    `fuzz` is no admin: 403), ids are random (deletes find nothing), and inference is capped at MAX_TOKENS.
    `endpoint` puts Hugging Face on the loopback Hub (which has only a GGUF repo, so a repo is 404), never on
    the network, where each analysis would wait out huggingface_hub's retries.
    """
    if case.path in INFERENCE_PATHS and isinstance(case.body, dict):
        # the fuzzer never names max_tokens, and the engine's default is the rest of its context
        case.body["max_tokens"] = MAX_TOKENS
    case.call_and_validate(base_url=fuzzed_gateway)
