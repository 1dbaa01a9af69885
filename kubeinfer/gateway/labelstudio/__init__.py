"""Label Studio's ML backend protocol on the gateway (docs/label-studio.md)."""

from kubeinfer.gateway.labelstudio.routes import router

__all__ = ["router"]
