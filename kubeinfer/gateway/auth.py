"""Bearer API keys mapped to projects; every file and batch belongs to the project of the key that made it."""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict, deque
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


class AuthThrottle:
    """Failed key checks per client address in a sliding window; past the limit the address gets 429.

    While an address is throttled its keys are not even compared, right or wrong, so guessing stops there;
    Retry-After says when its oldest failure leaves the window. At most `MAX_ADDRESSES` are tracked (the
    least recently failing forgotten first), so a flood of addresses cannot grow the gateway's memory.
    """

    MAX_ADDRESSES = 10_000

    def __init__(self, max_failures: int = 20, window_seconds: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, stamp: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= stamp - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def check(self, client: str | None) -> None:
        """429 when `client` has failed too often within the window."""
        if client is None:
            return
        stamp = time.monotonic()
        failures = self._recent(client, stamp)
        if failures is not None and len(failures) >= self.max_failures:
            retry = max(1, math.ceil(failures[0] + self.window - stamp))
            raise ApiError(
                429,
                f"too many failed authentication attempts from this address; retry in {retry} s",
                "too_many_auth_failures",
                type_="rate_limit_error",
                headers={"Retry-After": str(retry)},
            )

    def failed(self, client: str | None) -> None:
        if client is None:
            return
        stamp = time.monotonic()
        failures = self._recent(client, stamp) or deque(maxlen=self.max_failures)
        failures.append(stamp)
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)


class KeyRing:
    def __init__(self, keys: dict[str, str], insecure_no_auth: bool, throttle: AuthThrottle | None = None) -> None:
        if not keys and not insecure_no_auth:
            raise NoApiKeysError()
        self._keys = keys
        self.open = not keys
        self.throttle = throttle or AuthThrottle()

    def __repr__(self) -> str:  # never print keys, even in a debugger or a traceback
        return f"KeyRing({len(self._keys)} keys, open={self.open})"

    def project_of(self, token: str | None, client: str | None = None) -> str:
        """The key's project; `client` (the caller's address) is throttled after repeated wrong keys."""
        if self.open:
            return OPEN_PROJECT
        if token is None:
            raise ApiError(401, "Missing bearer API key in the Authorization header", "missing_api_key")
        self.throttle.check(client)
        found = None
        for key, project in self._keys.items():  # compare all, in constant time, to leak nothing by timing
            if hmac.compare_digest(key.encode(), token.encode()):
                found = project
        if found is None:
            self.throttle.failed(client)
            raise ApiError(401, "Incorrect API key provided", "invalid_api_key")
        return found


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


_bearer = HTTPBearer(auto_error=False)


def _project(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    ring: KeyRing = request.app.state.ctx.keys
    return ring.project_of(credentials.credentials if credentials else None, client_address(request))


Project = Annotated[str, Depends(_project)]
