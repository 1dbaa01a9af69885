"""`kubeinfer operator run`: the kopf operator, standalone (no peering), against the current kubeconfig."""

from __future__ import annotations

import typer

from kubeinfer.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Run the Kubernetes operator.")


@app.command()
def run(
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Watch only this namespace (default: all, or settings)."
    ),
    liveness: str | None = typer.Option(None, help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz"),
) -> None:
    """Reconcile BenchmarkMatrix, ModelInstall and BatchJob resources until stopped."""
    import kopf

    import kubeinfer.operator.batch_job  # noqa: F401  (each door registers its handlers when imported)
    import kubeinfer.operator.benchmark_matrix  # noqa: F401
    import kubeinfer.operator.model_install  # noqa: F401
    import kubeinfer.operator.startup  # noqa: F401

    kopf.configure(verbose=False)
    watched = namespace or get_settings().operator.namespace
    if watched:

        @kopf.on.startup()
        def skip_namespace_scan(settings: kopf.OperatorSettings, **_: object) -> None:
            """A namespaced operator needs no cluster-wide namespace list, which its role rightly lacks.

            Without this kopf retries the forbidden list with back-off for about a minute at every start.
            CRDs are still discovered at start; one created later needs an operator restart.
            """
            settings.scanning.disabled = True

    kopf.run(
        standalone=True,
        namespaces=[watched] if watched else [],
        clusterwide=watched is None,
        liveness_endpoint=liveness,
    )
