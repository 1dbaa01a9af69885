"""kopf handlers for ModelInstall: an install Job, then optionally a served Deployment with OOM fallback.

The status is the record: files land there once the install Job has verified them, so a restarted operator
serves without fetching again. The server counts as Ready only once it answers `/v1/models` on an address
from the Service's EndpointSlices. When a server pod is OOM-killed the Deployment moves to the next smaller
quantization (the order of `kubeinfer.models.install.serving_order`) until the list runs out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import kopf
from kubernetes import client

from kubeinfer.kube import conditions
from kubeinfer.kube.client import api_client
from kubeinfer.kube.objects import create_or_adopt, delete_job, read_json_config_map
from kubeinfer.kube.pod_start import PODS_STARTED, StartReporter, Startup, as_json, check_job, check_pods
from kubeinfer.kube.poll import PollInterval
from kubeinfer.metrics import operator as metrics
from kubeinfer.models.install import serving_order
from kubeinfer.operator.builders.common import SERVER_PORT
from kubeinfer.operator.builders.model_install import (
    TEMPLATE_HASH_ANNOTATION,
    build_clean_job,
    build_install_job,
    build_server_deployment,
    build_service,
)
from kubeinfer.resources.model_install import InstallPhase, ModelInstall
from kubeinfer.resources.names import (
    COMPONENT_LABEL,
    DEMAND_ANNOTATION,
    GROUP,
    INSTALL_LABEL,
    INSTALL_PLURAL,
    QUANT_LABEL,
    VERSION,
    deployment_name,
    progress_name,
    result_name,
    service_name,
    slug,
)
from kubeinfer.settings import OperatorSettings, get_settings

PLURAL = INSTALL_PLURAL
Emit = Callable[[str, str, bool], None]


def _install_of(body: dict[str, Any]) -> ModelInstall:
    meta = body["metadata"]
    return ModelInstall.model_validate(
        {"apiVersion": body["apiVersion"], "kind": body["kind"], "spec": body["spec"]}
        | {"metadata": {"name": meta["name"], "namespace": meta.get("namespace")}}
    )


class ModelInstallReconciler:
    def __init__(self, api: client.ApiClient, body: dict[str, Any], settings: OperatorSettings, emit: Emit) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.namespace = body["metadata"]["namespace"]
        self.name = body["metadata"]["name"]
        self.settings = settings
        self.emit = emit
        self.answered: set[str] = set()
        status, generation = body.get("status") or {}, body["metadata"].get("generation")
        self.start = StartReporter(status.get("conditions") or [], self.put_condition, emit, generation)

    # --- the resource ---------------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        return body

    def patch_status(self, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"status": status}
        )

    def put_condition(self, made: dict[str, Any]) -> None:
        """One condition into the status, the others kept (a status patch replaces the whole list)."""
        self.patch_status({"conditions": conditions.merged((self.read().get("status") or {}).get("conditions"), made)})

    def kept(self) -> list[dict[str, Any]]:
        """The conditions a writer of the whole list carries along: why pods could not start, if that was said."""
        return [self.start.current] if self.start.current else []

    def fail(self, reason: str, message: str, generation: int | None, condition: str = "Installed") -> None:
        self.patch_status(
            {
                "phase": InstallPhase.failed.value,
                "message": message[:2000],
                "observedGeneration": generation,
                "conditions": [
                    conditions.condition(condition, False, reason, message, generation),
                    conditions.condition("Ready", False, reason, message, generation),
                    *self.kept(),
                ],
            }
        )
        self.emit(reason, message, True)

    # --- install --------------------------------------------------------------------------------------

    def install(self, body: dict[str, Any], stopped: kopf.DaemonStopped) -> dict[str, Any] | None:
        """Run (or find) this generation's install Job, mirroring its progress; None when stopped first."""
        job = build_install_job(body, _install_of(body), self.settings)
        name = job["metadata"]["name"]
        if (found := read_json_config_map(self.core, self.namespace, result_name(name))) is not None:
            return found
        create_or_adopt(lambda: self.batch.create_namespaced_job(self.namespace, job))
        self.patch_status({"phase": InstallPhase.downloading.value, "message": f"install Job {name}"})
        self.emit("Installing", f"install Job {name} started", False)
        last_progress: dict[str, Any] | None = None
        while not stopped:
            job_now = self.batch.read_namespaced_job_status(name, self.namespace)
            status = job_now.status
            progress = read_json_config_map(self.core, self.namespace, progress_name(name))
            if progress is not None and progress != last_progress:
                self.patch_status({"progress": progress})
                last_progress = progress
            if status.succeeded:
                self.start.report(True)
                found = read_json_config_map(self.core, self.namespace, result_name(name))
                return found or {"error": f"install Job {name} succeeded but wrote no result", "reason": "NoResult"}
            failed = [c for c in (status.conditions or []) if c.type == "Failed" and c.status == "True"]
            if failed:
                why = f"{failed[0].reason}: {failed[0].message}"
                return {
                    "error": f"install Job {name} failed ({why}); {self._pod_log_hint(name)}",
                    "reason": "JobFailed",
                }
            self.start.check(partial(check_job, self.core, as_json(job_now)))
            stopped.wait(self.settings.poll_seconds)
        return None

    def record_install(self, result: dict[str, Any], generation: int | None, serving: bool) -> None:
        files = [
            {
                "quantization": f["quantization"],
                "path": f["path"],
                "sha256": f["sha256"],
                "sizeBytes": f["size_bytes"],
                "source": f["source"],
            }
            for f in result["files"]
        ]
        total = sum(f["sizeBytes"] for f in files)
        message = ", ".join(f"{f['quantization']} sha256 {f['sha256'][:12]}" for f in files)
        status: dict[str, Any] = {
            "files": files,
            "sizing": result["sizing"],
            "progress": {"bytesDone": total, "bytesTotal": total},
            "message": f"installed {message}",
            "conditions": [
                conditions.condition("Installed", True, "Verified", f"installed {message}", generation),
                *self.kept(),
            ],
        }
        if serving:
            status["phase"] = InstallPhase.starting.value
        else:
            status |= {"phase": InstallPhase.ready.value, "observedGeneration": generation}
            status["conditions"].append(conditions.condition("Ready", True, "Installed", "files verified", generation))
        self.patch_status(status)
        self.emit("Installed", f"installed {message}", False)

    def _pod_log_hint(self, job: str) -> str:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={job}").items
        for pod in pods:
            for cs in pod.status.container_statuses or []:
                terminated = cs.state.terminated if cs.state else None
                if terminated and terminated.message:
                    return f"last pod said: {terminated.message.strip().splitlines()[-1][:500]}"
        return f"see `kubectl logs job/{job}`"

    # --- serving --------------------------------------------------------------------------------------

    def serve(self, stopped: kopf.DaemonStopped) -> None:
        """Keep the server Deployment on the current quantization; fall back on OOM; report readiness.

        Checks come quickly while something changes and slow down to `max_poll_seconds` while all is steady.
        """
        wait = PollInterval(self.settings.poll_seconds, self.settings.max_poll_seconds)
        while not stopped:
            body = self.read()
            install = _install_of(body)
            if install.spec.serving is None:
                return
            order, current = self._quantizations(body, install)
            if self._oom_killed(current):
                if not self._fall_back(order, current, _serving_status(body), body["metadata"].get("generation")):
                    return
                wait.reset()
                continue
            idle = _idle(body, install)
            self._ensure_server(body, install, current, body.get("status") or {}, replicas=0 if idle else None)
            endpoints = [] if idle else self._answering_endpoints(current)
            changed = self._report_serving(body, install, current, endpoints, idle)
            if endpoints:
                self.start.report(True)
            elif not idle:
                self.start.check(partial(self._server_startup, current))
            if changed or idle:  # when idle, notice new demand at once: a one-off demand lasts only idleSeconds
                wait.reset()
            stopped.wait(wait())

    def _quantizations(self, body: dict[str, Any], install: ModelInstall) -> tuple[list[str], str]:
        """The serving order of the installed files, and the one served now (the first until a fallback)."""
        sizes = {f["quantization"]: f["sizeBytes"] for f in (body.get("status") or {}).get("files", [])}
        order = serving_order(install.spec, sizes)
        current = _serving_status(body).get("quantization")
        return order, current if current in order else order[0]

    def _report_serving(
        self, body: dict[str, Any], install: ModelInstall, current: str, endpoints: list[str], idle: bool
    ) -> bool:
        """Write phase, endpoints and the Ready condition when they changed; True when they did."""
        assert install.spec.serving is not None
        status, serving_status = body.get("status") or {}, _serving_status(body)
        generation = body["metadata"].get("generation")
        ready = bool(endpoints)
        phase = InstallPhase.idle if idle else InstallPhase.ready if ready else InstallPhase.starting
        update: dict[str, Any] = {
            "phase": phase.value,
            "observedGeneration": generation,
            "serving": serving_status
            | {
                "quantization": current,
                "deployment": deployment_name(self.name),
                "service": service_name(self.name),
                "readyReplicas": len(endpoints),
                "endpoints": [f"http://{ip}:{SERVER_PORT}" for ip in endpoints],
            },
        }
        if update["phase"] == status.get("phase") and update["serving"] == serving_status:
            return False
        message = f"{install.model_name} {current} answers on {len(endpoints)} endpoint(s)"
        reason = "Serving" if ready else "Starting"
        if idle:
            message = f"no demand for {install.spec.serving.idle_seconds}s: scaled to zero until needed"
            reason = "ScaledToZero"
            self.emit(reason, message, False)
        carried = [c for c in status.get("conditions", []) if c.get("type") in ("Installed", PODS_STARTED)]
        update["conditions"] = [*carried, conditions.condition("Ready", ready, reason, message, generation)]
        update["message"] = message if ready or idle else f"waiting for {install.model_name} {current} to answer"
        self.patch_status(update)
        if ready and status.get("phase") != InstallPhase.ready.value:
            self.emit("Ready", message, False)
        return True

    def _ensure_server(
        self, body: dict[str, Any], install: ModelInstall, quant: str, status: dict[str, Any], replicas: int | None
    ) -> None:
        files = {f["quantization"]: f for f in status.get("files", [])}
        sizing = status.get("sizing") or {}
        estimate = int(sizing.get("estimatedBytes", 0))
        # The install sized the first choice; a fallback swaps only the weights.
        first = files.get(sizing.get("quantization", ""), files[quant])
        request = max(estimate - first["sizeBytes"] + files[quant]["sizeBytes"], files[quant]["sizeBytes"])
        desired = build_server_deployment(
            body, install, files[quant]["path"], quant, request, self.settings, replicas=replicas
        )
        name = desired["metadata"]["name"]
        try:
            current = self.apps.read_namespaced_deployment(name, self.namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            create_or_adopt(lambda: self.apps.create_namespaced_deployment(self.namespace, desired))
            create_or_adopt(lambda: self.core.create_namespaced_service(self.namespace, build_service(body, install)))
            self.emit("ServerCreated", f"Deployment {name} serving {quant}", False)
            return
        annotations = current.metadata.annotations or {}
        if annotations.get(TEMPLATE_HASH_ANNOTATION) != desired["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]:
            # replaced, not patched: a strategic merge would keep fields the new template drops (a memory limit)
            desired["metadata"]["annotations"] = annotations | desired["metadata"]["annotations"]
            desired["metadata"]["resourceVersion"] = current.metadata.resource_version
            try:
                self.apps.replace_namespaced_deployment(name, self.namespace, desired)
            except client.ApiException as exc:
                if exc.status != 409:  # changed since it was read: the next round replaces it
                    raise
                return
            self.emit("ServerUpdated", f"Deployment {name} rolled to the current spec ({quant})", False)
        elif current.spec.replicas != desired["spec"]["replicas"]:
            replicas_patch = {"spec": {"replicas": desired["spec"]["replicas"]}}
            self.apps.patch_namespaced_deployment(name, self.namespace, replicas_patch)

    def _server_selector(self, quant: str) -> str:
        return f"{INSTALL_LABEL}={slug(self.name)[:63]},{QUANT_LABEL}={quant}"

    def _server_pods(self, quant: str) -> list[client.V1Pod]:
        selector = self._server_selector(quant)
        pods: list[client.V1Pod] = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return pods

    def _server_startup(self, quant: str) -> Startup:
        """Whether the server's pods start: the Deployment's ReplicaFailure, its pods' scheduling and images."""
        deployment = as_json(self.apps.read_namespaced_deployment(deployment_name(self.name), self.namespace))
        return check_pods(self.core, self.namespace, self._server_selector(quant), deployment)

    def _oom_killed(self, quant: str) -> bool:
        for pod in self._server_pods(quant):
            for cs in pod.status.container_statuses or []:
                for state in (cs.state, cs.last_state):
                    if state and state.terminated and state.terminated.reason == "OOMKilled":
                        return True
        return False

    def _fall_back(self, order: list[str], current: str, serving: dict[str, Any], generation: int | None) -> bool:
        """Move to the next smaller quantization; False (and the server scaled to zero) when there is none."""
        position = order.index(current)
        following = order[position + 1] if position + 1 < len(order) else None
        fallbacks = [
            *serving.get("fallbacks", []),
            {"fromQuantization": current, "reason": "OOMKilled", "at": conditions.now()}
            | ({"toQuantization": following} if following else {}),
        ]
        self.answered.clear()
        if following is None:
            self.apps.patch_namespaced_deployment(deployment_name(self.name), self.namespace, {"spec": {"replicas": 0}})
            message = f"{current} was OOM-killed and no smaller quantization is left (tried {', '.join(order)})"
            self.patch_status({"serving": serving | {"fallbacks": fallbacks, "readyReplicas": 0, "endpoints": []}})
            self.fail("NoSmallerQuantization", message, generation, condition="Serving")
            return False
        self.patch_status(
            {
                "phase": InstallPhase.starting.value,
                "serving": serving | {"quantization": following, "fallbacks": fallbacks, "endpoints": []},
                "message": f"{current} was OOM-killed; serving {following} instead",
            }
        )
        metrics.OOM_FALLBACKS.inc()
        self.emit("OOMFallback", f"{current} was OOM-killed; falling back to {following}", True)
        return True

    def _answering_endpoints(self, quant: str) -> list[str]:
        """Ready addresses of the Service whose server answers `/v1/models` (each checked once)."""
        pods = {p.metadata.name for p in self._server_pods(quant) if p.metadata.deletion_timestamp is None}
        selector = f"kubernetes.io/service-name={service_name(self.name)}"
        slices = self.discovery.list_namespaced_endpoint_slice(self.namespace, label_selector=selector).items
        ready = []
        for endpoint in (e for s in slices for e in (s.endpoints or [])):
            target = endpoint.target_ref.name if endpoint.target_ref else None
            if not (endpoint.conditions and endpoint.conditions.ready) or target not in pods:
                continue
            ready.extend(endpoint.addresses)
        answering = [ip for ip in sorted(set(ready)) if ip in self.answered or self._answers(ip)]
        self.answered = set(answering)
        return answering

    def _answers(self, ip: str) -> bool:
        try:
            response = httpx.get(
                f"http://{ip}:{SERVER_PORT}/v1/models", timeout=self.settings.server_probe_timeout_seconds
            )
            return response.status_code == 200 and bool(response.json().get("data"))
        except (httpx.HTTPError, ValueError):
            return False

    # --- deletion -------------------------------------------------------------------------------------

    def cancel(self, body: dict[str, Any], timeout: float = 120) -> None:
        """Stop a running install and remove its partial files; finished files stay in the shared cache."""
        selector = f"{INSTALL_LABEL}={slug(self.name)[:63]},{COMPONENT_LABEL}=install"
        for job in self.batch.list_namespaced_job(self.namespace, label_selector=selector).items:
            delete_job(self.batch, self.namespace, job.metadata.name)
        deadline = time.monotonic() + timeout
        while self.core.list_namespaced_pod(self.namespace, label_selector=selector).items:
            if time.monotonic() > deadline:
                raise kopf.TemporaryError("install pods are still terminating", delay=5)
            time.sleep(self.settings.poll_seconds)
        clean = build_clean_job(body, _install_of(body), self.settings)
        name = clean["metadata"]["name"]
        create_or_adopt(lambda: self.batch.create_namespaced_job(self.namespace, clean))
        while True:
            status = self.batch.read_namespaced_job_status(name, self.namespace).status
            if status.succeeded:
                break
            if any(c.type == "Failed" and c.status == "True" for c in status.conditions or []):
                raise kopf.PermanentError(f"clean-up Job {name} failed; partial files may remain")
            if time.monotonic() > deadline:
                raise kopf.TemporaryError(f"clean-up Job {name} still running", delay=5)
            time.sleep(self.settings.poll_seconds)
        delete_job(self.batch, self.namespace, name)


def _serving_status(body: dict[str, Any]) -> dict[str, Any]:
    serving: dict[str, Any] = (body.get("status") or {}).get("serving") or {}
    return serving


def _idle(body: dict[str, Any], install: ModelInstall) -> bool:
    """Whether nothing has needed the model for `serving.idleSeconds` (creation counts as a need)."""
    serving = install.spec.serving
    if serving is None or serving.idle_seconds is None:
        return False
    meta = body["metadata"]
    created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00")).timestamp()
    demand = (meta.get("annotations") or {}).get(DEMAND_ANNOTATION, "")
    last = max(created, float(demand)) if demand.replace(".", "", 1).isdigit() else created
    return time.time() - last > serving.idle_seconds


def signal_demand(custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
    """Tell a ModelInstall that something needs it served now (it scales up from zero if it idled)."""
    patch = {"metadata": {"annotations": {DEMAND_ANNOTATION: str(int(time.time()))}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def _reconciler(body: kopf.Body) -> tuple[ModelInstallReconciler, dict[str, Any]]:
    raw = json.loads(json.dumps(dict(body)))

    def emit(reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(body, reason=reason, message=message[:1000])

    return ModelInstallReconciler(api_client(), raw, get_settings().operator, emit), raw


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=30)
def run_install(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Install once per generation, then keep serving; every step is read back from the status on restart."""
    reconciler, raw = _reconciler(body)
    generation = raw["metadata"].get("generation")
    status = raw.get("status") or {}
    if not status.get("phase"):
        reconciler.patch_status({"phase": InstallPhase.pending.value})  # a phase from the first reconcile on
    try:
        install = _install_of(raw)
    except ValueError as exc:
        reconciler.fail("InvalidSpec", str(exc), generation)
        return
    installed = status.get("files") and any(
        c.get("type") == "Installed" and c.get("status") == "True" and c.get("observedGeneration") == generation
        for c in status.get("conditions", [])
    )
    if status.get("phase") == InstallPhase.failed.value and status.get("observedGeneration") == generation:
        return
    if not installed:
        result = reconciler.install(raw, stopped)
        if result is None:
            return
        if "error" in result:
            metrics.model_install_failed(result.get("reason", "InstallFailed"))
            reconciler.fail(result.get("reason", "InstallFailed"), result["error"], generation)
            return
        metrics.model_installed(sum(int(f["size_bytes"]) for f in result["files"]))
        reconciler.record_install(result, generation, serving=install.spec.serving is not None)
    if install.spec.serving is not None:
        reconciler.serve(stopped)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def cancel_install(body: kopf.Body, **_: Any) -> None:
    """Deleting mid-download stops the Job and removes its partial files; served objects go by owner reference."""
    reconciler, raw = _reconciler(body)
    if (raw.get("status") or {}).get("phase") in (InstallPhase.ready.value, InstallPhase.starting.value):
        return
    reconciler.cancel(raw)
