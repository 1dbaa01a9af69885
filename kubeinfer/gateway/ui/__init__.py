"""The web console at `/ui`: server-rendered pages over the same domain services as the JSON API."""

from kubeinfer.gateway.ui.app import create_console

__all__ = ["create_console"]
