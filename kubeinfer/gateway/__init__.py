"""The OpenAI-compatible HTTP gateway: a FastAPI app factory and one router per resource."""

from kubeinfer.gateway.app import create_app

__all__ = ["create_app"]
