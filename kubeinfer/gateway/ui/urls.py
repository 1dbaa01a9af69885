"""Where the console is mounted, so its links and cookies hold wherever the gateway mounts it."""

from __future__ import annotations

from fastapi import Request


def base_path(request: Request) -> str:
    """`/ui` (the mount's root path), never with a trailing slash."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def cookie_path(request: Request) -> str:
    return base_path(request) or "/"
