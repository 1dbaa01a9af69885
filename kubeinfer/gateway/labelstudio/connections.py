"""Per-project connections: what Label Studio sent to `/setup`, kept in the gateway's metadata store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kubeinfer.batch.labelstudio import Plan, ProjectConfig, make_plan, parse_project_config
from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.errors import ApiError

KIND = "connection"


@dataclass
class Connection:
    """One Label Studio project connected to the gateway, under the gateway project of the API key."""

    ls_project: int
    label_config: str
    extra_params: dict[str, Any]
    #: Label Studio's own address and the project owner's token, as `/setup` sent them.
    hostname: str = ""
    access_token: str = ""

    @property
    def config(self) -> ProjectConfig:
        return parse_project_config(self.extra_params)


def save(ctx: GatewayContext, project: str, connection: Connection) -> None:
    ctx.meta.put_labelstudio(KIND, f"{project}/{connection.ls_project}", project, asdict(connection))


def load(ctx: GatewayContext, project: str, ls_project: int) -> Connection | None:
    data = ctx.meta.get_labelstudio(KIND, f"{project}/{ls_project}", project)
    return Connection(**data) if data is not None else None


def plan(ctx: GatewayContext, config: ProjectConfig, label_config: str) -> Plan:
    """The project's plan; a config that does not fit the label config or the served models is a 400."""
    try:
        return make_plan(config, label_config, ctx.settings.gateway.model, set(ctx.models))
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_labelstudio_config") from None


def write_target(ctx: GatewayContext, connection: Connection) -> tuple[str, str]:
    """Label Studio URL and token for writing predictions: extra_params, then settings, then `/setup`'s."""
    config, gw = connection.config, ctx.settings.gateway
    url = config.label_studio_url or gw.label_studio_url or connection.hostname
    token = config.label_studio_api_key or gw.label_studio_api_key or connection.access_token
    if not url or not token:
        raise ApiError(
            400,
            "no Label Studio URL and token to write predictions with: set extra_params.label_studio_url and "
            "label_studio_api_key, or KUBEINFER_GATEWAY__LABEL_STUDIO_URL and __LABEL_STUDIO_API_KEY",
            "invalid_labelstudio_config",
        )
    return url.rstrip("/"), token
