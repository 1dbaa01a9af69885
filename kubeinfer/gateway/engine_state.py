"""While the gateway's own llama-server is down, inference requests get a 503 that says why, at once."""

from __future__ import annotations

from kubeinfer.engines.watchdog import ServerState
from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.errors import ApiError


def unavailable_message(state: ServerState) -> str:
    """One sentence naming the server's state, its restarts and why it last ended."""
    restarts = f"{state.restarts} restart{'s' if state.restarts != 1 else ''} so far"
    what = {
        "starting": "is starting (loading the model)",
        "hung": "stopped answering and is being restarted",
        "backoff": "is down and waits to be restarted (back-off)",
        "stopped": "is stopped",
    }.get(state.state, f"is {state.state}")
    last = f"; last exit: {state.last_exit}" if state.last_exit else ""
    return f"the model server {what}, {restarts}{last}. Retry later."


async def require_engine(_project: Project, ctx: Ctx) -> None:
    """Route dependency of the inference routes; auth is checked first, so callers without a key learn nothing.

    In cluster mode a request may go to a ModelInstall's replicas instead, so the check is left to the
    inference router there.
    """
    if ctx.watchdog is None or ctx.settings.gateway.cluster_namespace:
        return
    state = ctx.watchdog.state()
    if state.state != "running":
        raise ApiError(503, unavailable_message(state), "engine_unavailable", type_="server_error")
