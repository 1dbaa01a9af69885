"""The client factory: in-cluster or from a kubeconfig (optionally one context), with one retry policy."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from kubeinfer.kube.errors import NoConfiguration

if TYPE_CHECKING:
    from kubernetes import client
    from urllib3.util.retry import Retry

#: Where a pod's ServiceAccount namespace is mounted.
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
THROTTLED_OR_FAILING = (429, 500, 502, 503, 504)


def retry_policy() -> Retry:
    """Retry what a busy API server asks to be retried: 429 (after its Retry-After) and 5xx, six times.

    Without it each such answer would end an operator daemon (kopf restarts it a minute later) or fail a
    console page. A refused connection is retried twice only, so a command pointed at a cluster that is
    not there says so within a second or two rather than after half a minute of back-off.
    """
    from urllib3.util.retry import Retry

    return Retry(
        total=6,
        connect=2,
        read=1,
        backoff_factor=0.5,
        status_forcelist=THROTTLED_OR_FAILING,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


@cache
def api_client(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """One client per (kubeconfig, context) for the process, sharing its connection pool.

    Without `kubeconfig`: $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount. Raises
    NoConfiguration naming what is missing or broken.
    """
    from kubernetes import client, config

    if kubeconfig is not None and not Path(kubeconfig).is_file():
        raise NoConfiguration(f"kubeconfig {kubeconfig} does not exist")
    configuration = client.Configuration()
    options = {"context": context} if context else {}
    try:
        if kubeconfig is not None:
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration, **options)
        else:
            config.load_config(client_configuration=configuration, **options)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise NoConfiguration(f"cannot load a Kubernetes configuration ({exc})") from exc
    configuration.retries = retry_policy()
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: Path | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's current context (or of `context`).

    Else the pod's own when in a cluster, else `default`.
    """
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(str(kubeconfig) if kubeconfig else None)
        chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
        found = chosen.get("context", {}).get("namespace")
    except (config.ConfigException, OSError, ValueError, AttributeError):
        found = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else None
    return str(found or "default")
