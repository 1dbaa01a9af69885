"""EndpointSlices to server URLs without a cluster (the real API server is in tests/cluster)."""

from __future__ import annotations

from kubernetes.client import (
    DiscoveryV1EndpointPort,
    V1Endpoint,
    V1EndpointConditions,
    V1EndpointSlice,
    V1ObjectMeta,
)

from kubeinfer.cluster.endpoints import service_name, slice_urls
from kubeinfer.operator.builders.model_install import build_service
from kubeinfer.resources.model_install import ModelInstall


def _slice(endpoints: list[V1Endpoint], ports: list[DiscoveryV1EndpointPort] | None) -> V1EndpointSlice:
    return V1EndpointSlice(address_type="IPv4", endpoints=endpoints, ports=ports, metadata=V1ObjectMeta(name="s"))


def _endpoint(address: str, ready: bool | None, terminating: bool | None = None) -> V1Endpoint:
    return V1Endpoint(addresses=[address], conditions=V1EndpointConditions(ready=ready, terminating=terminating))


def test_service_name_is_the_one_the_operator_creates() -> None:
    spec = {"source": {"pypi": "smollm2-135m"}, "quantization": "Q8_0"}
    install = ModelInstall.model_validate({"metadata": {"name": "m"}, "spec": spec})
    for name in ("smollm2-batch", "Qwen2.5_0.5B.Instruct", "x" * 80, "-odd--name-"):
        install.metadata.name = name  # the builder names the Service after the resource, whatever its name
        body = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "ModelInstall", "metadata": {"name": name, "uid": "u"}}
        assert build_service(body, install)["metadata"]["name"] == service_name(name)


def test_only_ready_not_terminating_endpoints_on_the_http_port_become_urls() -> None:
    http = [DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")]
    slices = [
        _slice([_endpoint("10.0.0.2", True), _endpoint("10.0.0.3", False), _endpoint("10.0.0.4", None)], http),
        _slice([_endpoint("10.0.0.1", True), _endpoint("10.0.0.5", True, terminating=True)], http),
        _slice([_endpoint("10.0.0.2", True)], http),  # the same pod in two slices during a resync
        _slice([_endpoint("10.0.0.9", True)], [DiscoveryV1EndpointPort(name="metrics", port=9090)]),
        _slice([_endpoint("10.0.0.8", True)], None),  # no ports yet
        _slice([V1Endpoint(addresses=["10.0.0.7"], conditions=None)], http),
        _slice([_endpoint("fd00::1", True)], http),
        _slice(None, http),  # type: ignore[arg-type]
    ]
    assert slice_urls(slices) == ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://[fd00::1]:8080"]
    assert slice_urls([]) == []
