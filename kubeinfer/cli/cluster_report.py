"""Fetch the report the operator stored for a finished BenchmarkMatrix (for `kubeinfer bench report`).

The operator writes the report JSON into a ConfigMap and names it in `status.report`
(`configmap/<name>`). kubernetes is imported only when a report is fetched, so the rest of the CLI starts
without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kubeinfer.operator.names import GROUP, VERSION

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubernetes import client

PLURAL = "benchmarkmatrices"
REPORT_KEY = "report.json"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: (connect, read) seconds: an unreachable API server fails in seconds, not minutes.
REQUEST_TIMEOUT = (5, 60)
T = TypeVar("T")


class ClusterReportError(RuntimeError):
    """The report cannot be fetched; the message says which object is missing or unfinished, and why."""


@dataclass
class FetchedReport:
    namespace: str
    config_map: str
    report: dict[str, Any]


def fetch_report(name: str, namespace: str | None = None, kubeconfig: Path | None = None) -> FetchedReport:
    """Read BenchmarkMatrix `name` and, once it is Completed, the report its status points at."""
    from kubernetes import client

    api, namespace = _connect(kubeconfig, namespace)
    where = f"BenchmarkMatrix {name} in namespace {namespace}"
    matrix = _call(
        api,
        lambda: client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
        ),
        not_found=f"{where} not found (kubectl get benchmarkmatrices -n {namespace} lists them)",
    )
    status = matrix.get("status") or {}
    config_map = report_config_map(where, status)
    body = _call(
        api,
        lambda: client.CoreV1Api(api).read_namespaced_config_map(
            config_map, namespace, _request_timeout=REQUEST_TIMEOUT
        ),
        not_found=f"{where} is Completed but its report ConfigMap {config_map} is missing",
    )
    raw = (body.data or {}).get(REPORT_KEY)
    if raw is None:
        raise ClusterReportError(f"ConfigMap {config_map} in namespace {namespace} has no {REPORT_KEY} key")
    try:
        report = json.loads(raw)
    except ValueError as exc:
        raise ClusterReportError(f"ConfigMap {config_map}: {REPORT_KEY} is not JSON ({exc})") from exc
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise ClusterReportError(f"ConfigMap {config_map}: {REPORT_KEY} is not a kubeinfer report (no results list)")
    return FetchedReport(namespace, config_map, report)


def report_config_map(where: str, status: dict[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    if phase != "Completed":
        progress = f"{status.get('cellsDone', 0)}/{status.get('cellsTotal', 0)} cells done"
        why = next((c.get("message") for c in status.get("conditions") or [] if c.get("message")), None)
        detail = f"phase {phase}, {progress}" + (f": {why}" if why and phase == "Failed" else "")
        raise ClusterReportError(f"{where} is not finished ({detail}); its report is written when it completes")
    kind, _, config_map = str(status.get("report") or "").partition("/")
    if kind != "configmap" or not config_map:
        raise ClusterReportError(f"{where} is Completed but status.report is {status.get('report')!r}")
    return config_map


def _connect(kubeconfig: Path | None, namespace: str | None) -> tuple[client.ApiClient, str]:
    from kubernetes import client, config

    if kubeconfig is not None and not kubeconfig.is_file():
        raise ClusterReportError(f"kubeconfig {kubeconfig} does not exist")
    try:
        if kubeconfig is not None:
            api = config.new_client_from_config(config_file=str(kubeconfig))
        else:
            config.load_config()
            api = client.ApiClient()
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ClusterReportError(
            f"cannot load a Kubernetes configuration ({exc}); pass --kubeconfig or set KUBECONFIG"
        ) from exc
    return api, namespace or _default_namespace(kubeconfig)


def _default_namespace(kubeconfig: Path | None) -> str:
    """The kubeconfig context's namespace, else the pod's own when in a cluster, else `default`."""
    from kubernetes import config

    try:
        _contexts, active = config.list_kube_config_contexts(str(kubeconfig) if kubeconfig else None)
        found = active.get("context", {}).get("namespace")
    except (config.ConfigException, OSError, ValueError, AttributeError):
        found = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else None
    return str(found or "default")


def _call(api: client.ApiClient, request: Callable[[], T], not_found: str) -> T:
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    server = api.configuration.host
    try:
        return request()
    except client.ApiException as exc:
        if exc.status == 404:
            raise ClusterReportError(not_found) from exc
        if exc.status in (401, 403):
            raise ClusterReportError(
                f"the cluster at {server} refused the request ({exc.status} {exc.reason})"
            ) from exc
        raise ClusterReportError(f"the cluster at {server} answered {exc.status} {exc.reason}") from exc
    except (HTTPError, OSError) as exc:
        cause = getattr(exc, "reason", None) or exc
        raise ClusterReportError(f"cannot reach the cluster at {server}: {cause}") from exc
