"""kopf daemon for BatchJob: validate, run the shards on the model's replicas, merge, through OpenAI's lifecycle.

Level-triggered: every step is read back from the status and from children with deterministic names, so a
restarted operator continues where the last one stopped and creates nothing twice. The steps:

validating   Job `<batch>-validate` checks the input; then the model must be a served ModelInstall.
in_progress  Once the project's limit admits it (kubeinfer.batch.admission), Indexed Job `<batch>-worker`
             (one pod per shard); shard progress ConfigMaps feed requestCounts.
             Cancel or expiry stop it here: the Job is deleted and its pods awaited before merging.
finalizing / cancelling / expiring
             Job `<batch>-merge` writes the output and error files; its result sets the final status.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from kubernetes import client

from kubeinfer.batch.admission import Candidate, may_start
from kubeinfer.batch.merge import result_file_ids
from kubeinfer.kube.client import api_client
from kubeinfer.kube.conditions import condition, merged
from kubeinfer.kube.objects import create_or_adopt, delete_job, read_json_config_map
from kubeinfer.kube.pod_start import StartReporter, Startup, as_json, check_job
from kubeinfer.metrics.batch_jobs import BATCH_JOBS, register, shard_metrics_of
from kubeinfer.metrics.shard_state import BrokenShardMetrics, ShardMetrics
from kubeinfer.operator.builders.batch_job import (
    build_clean_job,
    build_merge_job,
    build_validate_job,
    build_worker_job,
)
from kubeinfer.operator.model_install import signal_demand
from kubeinfer.resources.names import (
    BATCH_LABEL,
    BATCH_PLURAL,
    COMPONENT_LABEL,
    GROUP,
    INSTALL_PLURAL,
    VERSION,
    batch_job_name,
    batch_result_name,
    shard_progress_prefix,
)
from kubeinfer.settings import OperatorSettings, get_settings

PLURAL = BATCH_PLURAL
COMPLETION_WINDOWS = {"24h": 24 * 3600}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
Emit = Callable[[str, str, bool], None]
log = logging.getLogger(__name__)


def _now() -> int:
    return int(time.time())


def _created(body: dict[str, Any]) -> int:
    stamp = body["metadata"].get("creationTimestamp")
    if not stamp:
        return _now()
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).timestamp())


def _error(code: str, message: str, param: str | None = None, line: int | None = None) -> dict[str, Any]:
    return {"code": code, "message": message[:2000], "param": param, "line": line}


#: How often a running batch renews its ModelInstall's demand annotation (idleSeconds is at least 10).
DEMAND_EVERY_SECONDS = 5.0


class BatchJobReconciler:
    def __init__(self, api: client.ApiClient, body: dict[str, Any], settings: OperatorSettings, emit: Emit) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = body["metadata"]["namespace"]
        self.name = body["metadata"]["name"]
        self.settings = settings
        self.emit = emit
        self._demand_signalled = -DEMAND_EVERY_SECONDS
        #: `namespace/name`: the `batchjob` label of the batch's metrics (kubeinfer.metrics.batch_jobs).
        self.key = f"{self.namespace}/{self.name}"
        self._metrics_warned: set[str] = set()
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
        self.patch_status({"conditions": merged((self.read().get("status") or {}).get("conditions"), made)})

    # --- the loop -------------------------------------------------------------------------------------

    def step(self, body: dict[str, Any]) -> bool:
        """One pass over the state machine; False once the batch is final."""
        status = body.get("status") or {}
        state = status.get("status", "validating")
        if state in TERMINAL:
            return False
        if status.get("createdAt") is None:
            created = _created(body)
            window = COMPLETION_WINDOWS.get(body["spec"].get("completionWindow", "24h"), 24 * 3600)
            self.patch_status({"status": state, "createdAt": created, "expiresAt": created + window})
            return True
        if body["spec"].get("cancel") and state in ("validating", "in_progress"):
            self.patch_status({"status": "cancelling", "cancellingAt": _now()})
            self.emit("Cancelling", "cancel requested", False)
            return True
        if state == "validating":
            self._validate(body)
        elif state == "in_progress":
            self._run(body, status)
        else:  # finalizing or cancelling
            self._finish(body, status)
        return True

    def _validate(self, body: dict[str, Any]) -> None:
        result = read_json_config_map(self.core, self.namespace, batch_result_name(self.name, "validate"))
        if result is None:
            create_or_adopt(
                lambda: self.batch.create_namespaced_job(self.namespace, build_validate_job(body, self.settings))
            )
            self._fail_if_job_failed("validate", "validation_failed")
            self._watch_start("validate")
            return
        self.start.report(True)
        if not result.get("ok"):
            self._fail([_error(e["code"], e["message"], e.get("param"), e.get("line")) for e in result["errors"]])
            return
        model = body["spec"].get("model") or result.get("model")
        if body["spec"].get("model") and result.get("model") != body["spec"]["model"]:
            message = f"the input's model '{result.get('model')}' differs from spec.model '{body['spec']['model']}'"
            self._fail([_error("mismatched_model", message, "model")])
            return
        install = self._served_install(model)
        if install is None:
            served = ", ".join(sorted(self._served_models())) or "none"
            self._fail([_error("model_not_found", f"model '{model}' is not served here; served: {served}", "model")])
            return
        total = int(result["total"])
        self.patch_status(
            {
                "status": "in_progress",
                "inProgressAt": _now(),
                "model": model,
                "modelInstall": install,
                "requestCounts": {"total": total, "completed": 0, "failed": 0},
            }
        )
        self.emit("Validated", f"{total} requests for {model} (ModelInstall {install})", False)

    def _run(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        self._keep_model_wanted(status["modelInstall"])
        expires = status.get("expiresAt")
        expiring = status.get("expiredAt") is not None or (expires is not None and _now() >= expires)
        if expiring:
            if status.get("expiredAt") is None:
                self.patch_status({"expiredAt": _now()})
                self.emit("Expiring", "the completion window closed; merging what is done", True)
            self._finish(body, status)
            return
        worker = batch_job_name(self.name, "worker")
        job = self._job_status(worker)
        if job is None:
            if status.get("workersStartedAt") is None and not self._admitted():
                return  # the project's limit is reached, or a batch of higher priority goes first
            if not self._endpoints(status["modelInstall"]):
                return  # the model is not answering yet; the worker Job waits until it does
            if status.get("workersStartedAt") is None:
                self.patch_status({"workersStartedAt": _now(), "lastProgressAt": _now()})
            create_or_adopt(
                lambda: self.batch.create_namespaced_job(
                    self.namespace, build_worker_job(body, status["modelInstall"], self.settings)
                )
            )
            self.emit("WorkersStarted", f"{body['spec'].get('workers', 2)} workers", False)
            return
        status = self._mirror_progress(body, status)
        self._watch_progress(status)
        self._watch_start("worker")
        if job.succeeded and job.succeeded >= int(body["spec"].get("workers", 2)):
            self.patch_status({"status": "finalizing", "finalizingAt": _now()})
            self.emit("Finalizing", "every shard finished; merging", False)
        elif _failed(job):
            self.patch_status({"status": "finalizing", "finalizingAt": _now()})
            self.emit("WorkersFailed", "a worker failed too often; unanswered requests go to the error file", True)

    def _mirror_progress(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Shard progress into requestCounts, usage and the batch's metrics; returns the status as patched."""
        counts = {"completed": 0, "failed": 0, "prompt": 0, "completion": 0, "in_flight": 0}
        shards: dict[int, ShardMetrics | None] = {}
        for index in range(int(body["spec"].get("workers", 2))):
            name = f"{shard_progress_prefix(self.name)}-{index}"
            shard = read_json_config_map(self.core, self.namespace, name)
            if shard is None:
                continue  # the shard's worker has not reported yet
            counts["completed"] += int(shard.get("completed", 0))
            counts["failed"] += int(shard.get("failed", 0))
            counts["prompt"] += int(shard.get("prompt_tokens", 0))
            counts["completion"] += int(shard.get("completion_tokens", 0))
            counts["in_flight"] += int(shard.get("in_flight", 0))
            shards[index] = self._metrics_of(shard, f"ConfigMap {name}")
        total = (status.get("requestCounts") or {}).get("total", 0)
        done = counts["completed"] + counts["failed"]
        progress = done / total if total else 0.0
        BATCH_JOBS.running(self.key, status.get("model") or "", shards, counts["in_flight"], progress)
        update: dict[str, Any] = {
            "requestCounts": {"total": total, "completed": counts["completed"], "failed": counts["failed"]},
            "usage": {"promptTokens": counts["prompt"], "completionTokens": counts["completion"]},
        }
        if update["requestCounts"] != status.get("requestCounts") or update["usage"] != status.get("usage"):
            if _finished(update["requestCounts"]) != _finished(status.get("requestCounts") or {}):
                update["lastProgressAt"] = _now()
            self.patch_status(update)
            return {**status, **update}
        return status

    def _watch_progress(self, status: dict[str, Any]) -> None:
        """`Progressing` turns False, with a warning Event, once no request has finished for the stall time.

        Hung engines, workers stuck in back-off and a model that never answers all look the same from
        here, and that is the point: the user learns that the batch stands still, and the Events of the
        worker Job and the model's pods say why.
        """
        last = status.get("lastProgressAt") or status.get("workersStartedAt") or _now()
        stalled_for = _now() - int(last)
        stalled = stalled_for >= self.settings.batch_stall_seconds
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
        if current is not None and (current.get("status") == "False") == stalled:
            return
        if stalled:
            limit = self.settings.batch_stall_seconds
            message = f"no request finished in the last {stalled_for} s (batchStallSeconds {limit:g})"
            self.put_condition(_progressing(False, "NoProgress", message))
            self.emit("NoProgress", message, True)
        else:
            self.put_condition(_progressing(True, "RequestsFinishing", "workers finish requests"))
            if current is not None:
                self.emit("ProgressResumed", "requests finish again", False)

    def _finish(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Stop the workers (cancel, expiry), wait until none runs, then merge and set the final status."""
        state = status.get("status")
        if status.get("inProgressAt") is None:  # cancelled before anything ran
            self.patch_status({"status": "cancelled", "cancelledAt": _now()})
            BATCH_JOBS.finished(self.key, "cancelled", None, None)
            self.emit("Cancelled", "cancelled before it ran", False)
            return
        if state != "finalizing":
            delete_job(self.batch, self.namespace, batch_job_name(self.name, "worker"))
        if self._pods("worker"):
            return
        result = read_json_config_map(self.core, self.namespace, batch_result_name(self.name, "merge"))
        if result is None:
            # cancelled: partial output only; expired: the rest as batch_expired; a Job that gave up: worker_failed
            missing = {"cancelling": "", "finalizing": "worker_failed"}.get(state or "", "batch_expired")
            create_or_adopt(
                lambda: self.batch.create_namespaced_job(self.namespace, build_merge_job(body, missing, self.settings))
            )
            self._fail_if_job_failed("merge", "merge_failed")
            self._watch_start("merge")
            return
        self.start.report(True)
        final = {"cancelling": "cancelled", "finalizing": "completed"}.get(state or "", "expired")
        total = int(result["total"])
        progress = (int(result["completed"]) + int(result["failed"])) / total if total else 1.0
        output_id, error_id = result_file_ids(self.name)
        self.patch_status(
            {
                "status": final,
                f"{final}At": _now(),
                "requestCounts": {
                    "total": result["total"],
                    "completed": result["completed"],
                    "failed": result["failed"],
                },
                "usage": {"promptTokens": result["prompt_tokens"], "completionTokens": result["completion_tokens"]},
                "outputFileId": output_id if result.get("output_file_id") else None,
                "errorFileId": error_id if result.get("error_file_id") else None,
            }
        )
        self.emit(final.capitalize(), f"{result['completed']} completed, {result['failed']} failed", False)
        BATCH_JOBS.finished(self.key, final, self._metrics_of(result, "the merge result"), progress)

    def clean_up(self, body: dict[str, Any], timeout: float = 120) -> None:
        """On delete: stop the workers, then remove the shard logs from the shared store.

        The input, output and error files stay: they are files of the project, deleted through /v1/files.
        """
        BATCH_JOBS.forget(self.key)
        for component in ("worker", "merge", "validate"):
            delete_job(self.batch, self.namespace, batch_job_name(self.name, component))
        deadline = time.monotonic() + timeout
        while self._pods("worker") or self._pods("merge"):
            if time.monotonic() > deadline:
                raise kopf.TemporaryError("batch pods are still terminating", delay=5)
            time.sleep(self.settings.poll_seconds)
        name = batch_job_name(self.name, "clean")
        create_or_adopt(lambda: self.batch.create_namespaced_job(self.namespace, build_clean_job(body, self.settings)))
        while True:
            job = self._job_status(name)
            if job is not None and job.succeeded:
                break
            if job is not None and _failed(job):
                raise kopf.PermanentError(f"clean-up Job {name} failed; shard logs may remain")
            if time.monotonic() > deadline:
                raise kopf.TemporaryError(f"clean-up Job {name} still running", delay=5)
            time.sleep(self.settings.poll_seconds)
        delete_job(self.batch, self.namespace, name)

    # --- helpers --------------------------------------------------------------------------------------

    def _metrics_of(self, report: dict[str, Any], where: str) -> ShardMetrics | None:
        """A shard's or the merge's metric state; None with one warning per report when it is unusable.

        Metrics never hold up a batch: its counts and files come from elsewhere.
        """
        try:
            return shard_metrics_of(report)
        except BrokenShardMetrics as exc:
            if where not in self._metrics_warned:
                self._metrics_warned.add(where)
                log.warning("BatchJob %s: metrics of %s not exported: %s", self.key, where, exc)
            return None

    def _fail(self, errors: list[dict[str, Any]]) -> None:
        self.patch_status({"status": "failed", "failedAt": _now(), "errors": errors[:101]})
        BATCH_JOBS.finished(self.key, "failed", None, None)
        self.emit("Failed", "; ".join(e["message"] for e in errors[:3]), True)

    def _fail_if_job_failed(self, component: str, code: str) -> None:
        job = self._job_status(batch_job_name(self.name, component))
        if job is not None and _failed(job):
            self._fail([_error(code, f"Job {batch_job_name(self.name, component)} failed; see its pods' logs")])

    def _watch_start(self, component: str) -> None:
        """While a Job of the batch runs, `PodsStarted` says why its pods cannot start (every 10 s at most)."""
        self.start.check(partial(self._job_startup, batch_job_name(self.name, component)))

    def _job_startup(self, name: str) -> Startup:
        try:
            job = self.batch.read_namespaced_job_status(name, self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return check_job(self.core, as_json(job))

    def _keep_model_wanted(self, install: str) -> None:
        """While the batch runs, its ModelInstall must not idle down (and scales up if it had)."""
        if time.monotonic() - self._demand_signalled < DEMAND_EVERY_SECONDS:
            return
        try:
            signal_demand(self.custom, self.namespace, install)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        self._demand_signalled = time.monotonic()

    def _admitted(self) -> bool:
        limit = self.settings.batch_project_concurrency
        if not limit:
            return True
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        return may_start(self.name, [_candidate(item) for item in items], limit)

    def _served_models(self) -> dict[str, str]:
        """Served model name -> ModelInstall name."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, INSTALL_PLURAL)["items"]
        return {
            (item["spec"].get("model") or item["metadata"]["name"]): item["metadata"]["name"]
            for item in items
            if item["spec"].get("serving") is not None
        }

    def _served_install(self, model: str | None) -> str | None:
        return self._served_models().get(model or "")

    def _endpoints(self, install: str) -> list[str]:
        try:
            body = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, INSTALL_PLURAL, install)
        except client.ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return list(((body.get("status") or {}).get("serving") or {}).get("endpoints", []))

    def _pods(self, component: str) -> list[Any]:
        """Pods of a component that may still write (pending or running)."""
        selector = f"{BATCH_LABEL}={self.name},{COMPONENT_LABEL}={component}"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]

    def _create_job(self, job: dict[str, Any]) -> None:
        create_or_adopt(lambda: self.batch.create_namespaced_job(self.namespace, job))

    def _job_status(self, name: str) -> Any:
        try:
            return self.batch.read_namespaced_job_status(name, self.namespace).status
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


def _candidate(body: dict[str, Any]) -> Candidate:
    status = body.get("status") or {}
    in_progress = status.get("status") == "in_progress"
    started = status.get("workersStartedAt") is not None
    return Candidate(
        name=body["metadata"]["name"],
        project=body["spec"].get("project", "default"),
        priority=int(body["spec"].get("priority", 0)),
        created_at=int(status.get("createdAt") or _created(body)),
        running=in_progress and started,
        waiting=in_progress and not started,
    )


def _finished(counts: dict[str, Any]) -> int:
    return int(counts.get("completed", 0)) + int(counts.get("failed", 0))


def _progressing(ok: bool, reason: str, message: str) -> dict[str, Any]:
    return condition("Progressing", ok, reason, message, None)


def _failed(job: Any) -> bool:
    return any(c.type == "Failed" and c.status == "True" for c in job.conditions or [])


@kopf.on.startup()
def serve_batch_metrics(logger: kopf.Logger, **_: Any) -> None:
    """The BatchJobs' batch and vLLM metrics on the operator's /metrics (kubeinfer.metrics.batch_jobs)."""
    try:
        register()
    except ValueError as exc:  # this process registered the worker-side families itself; never in the operator
        logger.error(f"batch metrics not exported: {exc}")


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=30)
def run_batch(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Drive one BatchJob to a final status; every step is read back from the API on each pass."""
    raw = json.loads(json.dumps(dict(body)))
    settings = get_settings().operator

    def emit(reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(body, reason=reason, message=message[:1000])

    reconciler = BatchJobReconciler(api_client(), raw, settings, emit)
    while not stopped:
        if not reconciler.step(reconciler.read()):
            return
        stopped.wait(settings.poll_seconds)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def clean_up_batch(body: kopf.Body, **_: Any) -> None:
    """A deleted BatchJob leaves no shard logs behind on the shared store."""
    raw = json.loads(json.dumps(dict(body)))
    reconciler = BatchJobReconciler(api_client(), raw, get_settings().operator, lambda *_: None)
    reconciler.clean_up(raw)
