"""Bearer API keys mapped to projects; every file and batch belongs to the project of the key that made it."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kubeinfer.gateway.errors import ApiError

#: Project of every request when the gateway runs with --insecure-no-auth.
OPEN_PROJECT = "default"


class NoApiKeysError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "no API keys configured: set KUBEINFER_GATEWAY__API_KEYS='key1=projectA,key2=projectB' "
            "(or KUBEINFER_GATEWAY__API_KEYS_FILE), or pass --insecure-no-auth"
        )


def parse_api_keys(text: str) -> dict[str, str]:
    """`key1=projectA,key2=projectB` (commas or newlines; `#` comments in files) to {key: project}."""
    keys: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        key, sep, project = item.partition("=")
        if not sep or not key.strip() or not project.strip():
            raise ValueError("API keys must be written key=project (the offending entry is not shown)")
        keys[key.strip()] = project.strip()
    return keys


def load_api_keys(inline: str, file: Path | None) -> dict[str, str]:
    keys = parse_api_keys(inline)
    if file is not None:
        keys.update(parse_api_keys(file.read_text()))
    return keys


class KeyRing:
    def __init__(self, keys: dict[str, str], insecure_no_auth: bool) -> None:
        if not keys and not insecure_no_auth:
            raise NoApiKeysError()
        self._keys = keys
        self.open = not keys

    def __repr__(self) -> str:  # never print keys, even in a debugger or a traceback
        return f"KeyRing({len(self._keys)} keys, open={self.open})"

    def project_of(self, token: str | None) -> str:
        if self.open:
            return OPEN_PROJECT
        if token is None:
            raise ApiError(401, "Missing bearer API key in the Authorization header", "missing_api_key")
        found = None
        for key, project in self._keys.items():  # compare all, in constant time, to leak nothing by timing
            if hmac.compare_digest(key.encode(), token.encode()):
                found = project
        if found is None:
            raise ApiError(401, "Incorrect API key provided", "invalid_api_key")
        return found


_bearer = HTTPBearer(auto_error=False)


def _project(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    ring: KeyRing = request.app.state.ctx.keys
    return ring.project_of(credentials.credentials if credentials else None)


Project = Annotated[str, Depends(_project)]
