"""Ready addresses of a ModelInstall's model servers, read from the EndpointSlices of its Service.

EndpointSlices follow pod readiness within a second or two, sooner than the operator copies them into the
ModelInstall's `status.serving.endpoints`, and reading them needs only `get`/`list` on
`discovery.k8s.io/endpointslices` in the namespace. Used by batch workers and the cluster-mode gateway.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from kubeinfer.kube.client import api_client
from kubeinfer.resources.names import GROUP, INSTALL_PLURAL, VERSION, service_name

PLURAL = INSTALL_PLURAL
SERVICE_LABEL = "kubernetes.io/service-name"
PORT_NAME = "http"


@cache
def _apis() -> tuple[Any, Any]:
    from kubernetes import client

    api = api_client()
    return client.DiscoveryV1Api(api), client.CustomObjectsApi(api)


def slice_urls(slices: list[Any]) -> list[str]:
    """`http://<address>:<port>` of every ready, not terminating endpoint in `slices`, sorted, no duplicates."""
    urls: set[str] = set()
    for item in slices:
        ports = [p.port for p in item.ports or [] if p.port and (p.name in (PORT_NAME, None, ""))]
        if not ports:
            continue
        for endpoint in item.endpoints or []:
            conditions = endpoint.conditions
            if conditions is None or not conditions.ready or conditions.terminating:
                continue
            urls.update(f"http://{_host(address)}:{ports[0]}" for address in endpoint.addresses or [])
    return sorted(urls)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def install_endpoints(namespace: str, install: str) -> list[str]:
    """Ready server URLs of ModelInstall `install`; [] while none is ready (or the Service does not exist)."""
    discovery, _ = _apis()
    selector = f"{SERVICE_LABEL}={service_name(install)}"
    return slice_urls(discovery.list_namespaced_endpoint_slice(namespace, label_selector=selector).items)


def installs_serving(namespace: str, model: str) -> list[str]:
    """Names of the ModelInstalls in `namespace` that serve `model` (`spec.model`, else their name)."""
    _, custom = _apis()
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return sorted(
        item["metadata"]["name"]
        for item in items
        if (item.get("spec") or {}).get("serving") is not None
        and ((item.get("spec") or {}).get("model") or item["metadata"]["name"]) == model
    )


def model_endpoints(namespace: str, model: str) -> list[str] | None:
    """Ready server URLs of every ModelInstall serving `model`; None when no ModelInstall serves it."""
    installs = installs_serving(namespace, model)
    if not installs:
        return None
    return sorted({url for install in installs for url in install_endpoints(namespace, install)})
