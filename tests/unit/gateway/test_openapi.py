"""docs/openapi.json is the gateway's API as its routes and models define it now (regenerate, never hand-edit)."""

from __future__ import annotations

import json
from pathlib import Path

from kubeinfer.cli.gateway import openapi_document

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
REGENERATE = "kubeinfer gateway openapi -O docs/openapi.json"


def test_published_openapi_document_matches_the_app() -> None:
    assert json.loads(PUBLISHED.read_text()) == openapi_document(), f"docs/openapi.json is stale: run `{REGENERATE}`"


def test_openapi_document_names_the_openai_routes() -> None:
    paths = openapi_document()["paths"]
    for route in ("/v1/files", "/v1/batches", "/v1/batches/{batch_id}/cancel", "/v1/chat/completions", "/v1/models"):
        assert route in paths
