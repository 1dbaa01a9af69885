"""`kubeinfer operator run`: the kopf operator, standalone (no peering), against the current kubeconfig."""

from __future__ import annotations

import typer

from kubeinfer.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Run the Kubernetes operator.")


@app.command()
def run(
    namespace: str | None = typer.Option(None, help="Watch only this namespace (default: all, or settings)."),
    liveness: str | None = typer.Option(None, help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz"),
) -> None:
    """Reconcile BenchmarkMatrix resources until stopped."""
    import kopf

    import kubeinfer.operator.handlers  # noqa: F401  (registers the handlers)

    watched = namespace or get_settings().operator.namespace
    kopf.run(
        standalone=True,
        namespaces=[watched] if watched else [],
        clusterwide=watched is None,
        liveness_endpoint=liveness,
    )
