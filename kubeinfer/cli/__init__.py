"""The `kubeinfer` command: one typer sub-app per area, each in its own module."""

from __future__ import annotations

from kubeinfer.cli.app import app

__all__ = ["app"]
