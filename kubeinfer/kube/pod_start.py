"""Why a child's pods cannot start, named from the API's own words, and the `PodsStarted` condition that says so.

`why_not_started` is a pure function of what the API server returns (plain JSON dicts, as `kubectl get -o
json` prints them): a Job's `FailedCreate` Events, a Deployment's `ReplicaFailure` condition, a pod's
`PodScheduled` condition and its containers' waiting states. The readers below it fetch those for a Job, a
Deployment's pods or one pod; `StartReporter` turns the answer into a condition and a Warning Event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from kubeinfer.kube.conditions import condition

if TYPE_CHECKING:
    from kubernetes import client

PODS_STARTED = "PodsStarted"
#: How often a waiting door reads its children's pods and Events (the cause shows within this plus its poll).
CHECK_EVERY_SECONDS = 10.0

#: Container waiting reasons that mean the image cannot be had (`ErrImageNeverPull`: not on the node and
#: imagePullPolicy Never, the usual state of a locally built image that was not loaded into the cluster).
IMAGE_REASONS = frozenset({"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
#: Container waiting reasons that mean the kubelet cannot build the container (a missing Secret or ConfigMap key).
CREATE_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
FINAL_PHASES = ("Succeeded", "Failed")
#: The kubelet's waiting reason for a container that exited and is held back before its next restart.
CRASH_LOOP = "CrashLoopBackOff"
_SERVICE_ACCOUNT = re.compile(r'serviceaccounts? "[^"]+" not found')
_CLAIM = re.compile(
    r'persistentvolumeclaim "[^"]+" (not found|is being deleted)|unbound immediate PersistentVolumeClaims'
)


@dataclass(frozen=True)
class CannotStart:
    """Why pods cannot start: a condition reason (ServiceAccountMissing, ...) and a message quoting the API."""

    reason: str
    message: str


def why_not_started(
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    owner: Mapping[str, Any] | None = None,
) -> CannotStart | None:
    """The first reason the owner's pods cannot start, or None while nothing stands in their way.

    `owner` is the Job or Deployment (or None for a bare pod), `pods` its pods, `events` the Events about the
    owner itself. A `FailedCreate` Event counts only when it is newer than the newest pod: once a pod was
    created after it, the cause is gone (the Event stays in the API for an hour).
    """
    what = _describe(owner) if owner else None
    created = (_time(p.get("metadata", {}).get("creationTimestamp")) for p in pods)
    newest_pod = max((stamp for stamp in created if stamp is not None), default=None)
    latest = max((e for e in events if e.get("reason") == "FailedCreate"), key=_event_time, default=None)
    if latest is not None and (newest_pod is None or _event_time(latest) > newest_pod):
        return _create_failure(f"{what or 'the controller'} cannot create pods", str(latest.get("message", "")))
    for failure in ((owner or {}).get("status") or {}).get("conditions") or []:
        if failure.get("type") == "ReplicaFailure" and failure.get("status") == "True":
            return _create_failure(f"{what} cannot create pods", str(failure.get("message", "")))
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp") or pod.get("status", {}).get("phase") in FINAL_PHASES:
            continue
        if found := _unscheduled(pod) or _waiting(pod):
            return found
    return None


def _create_failure(prefix: str, message: str) -> CannotStart:
    reason = "ServiceAccountMissing" if _SERVICE_ACCOUNT.search(message) else "CreateFailed"
    return CannotStart(reason, f"{prefix}: {message}")


def _unscheduled(pod: Mapping[str, Any]) -> CannotStart | None:
    for scheduled in pod.get("status", {}).get("conditions") or []:
        if scheduled.get("type") != "PodScheduled" or scheduled.get("status") != "False":
            continue
        message = str(scheduled.get("message") or scheduled.get("reason") or "")
        reason = "ClaimMissing" if _CLAIM.search(message) else "Unschedulable"
        return CannotStart(reason, f"{_describe(pod)} cannot be scheduled: {message}")
    return None


def _waiting(pod: Mapping[str, Any]) -> CannotStart | None:
    status = pod.get("status", {})
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        why = waiting.get("reason")
        if why in IMAGE_REASONS or why in CREATE_REASONS:
            reason = "ImageNotPresent" if why in IMAGE_REASONS else "CreateFailed"
            detail = f"{why}: {waiting.get('message') or container.get('image', '')}"
            return CannotStart(reason, f"{_describe(pod)} container {container.get('name')} cannot start: {detail}")
        if why == CRASH_LOOP:
            return _crash_loop(pod, container)
    return None


def _crash_loop(pod: Mapping[str, Any], container: Mapping[str, Any]) -> CannotStart:
    """A container that keeps exiting: its last exit as the kubelet recorded it, and where its log is."""
    name, last = container.get("name"), ((container.get("lastState") or {}).get("terminated") or {})
    exit_text = f"exit code {last.get('exitCode', '?')} ({last.get('reason') or 'no reason given'})"
    if last.get("message"):
        exit_text += f": {str(last['message']).strip()[-300:]}"
    pod_name = pod.get("metadata", {}).get("name", "?")
    return CannotStart(
        "CrashLoop",
        f"{_describe(pod)} container {name} keeps exiting ({CRASH_LOOP}, {container.get('restartCount', 0)} "
        f"restarts); last {exit_text}; see kubectl logs {pod_name} -c {name} --previous",
    )


def _describe(body: Mapping[str, Any]) -> str:
    return f"{body.get('kind') or 'Pod'} {body.get('metadata', {}).get('name', '?')}"


def _time(stamp: object) -> datetime | None:
    if not stamp:
        return None
    if isinstance(stamp, datetime):
        return stamp
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def _event_time(event: Mapping[str, Any]) -> datetime:
    """When an Event last happened: a series' last observation, lastTimestamp, eventTime, then its creation."""
    series = event.get("series") or {}
    for stamp in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        event.get("metadata", {}).get("creationTimestamp"),
    ):
        if (found := _time(stamp)) is not None:
            return found
    return datetime.min.replace(tzinfo=UTC)


def running(pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether one of the pods has started (runs or ran to success): the moment a cause counts as gone.

    A pod whose container has restarted counts only once that container is ready again: between two crashes
    of a crash loop the container runs for a moment, and that moment must not read as "the cause is gone".
    """
    return any(_started(p.get("status", {})) for p in pods)


def _started(status: Mapping[str, Any]) -> bool:
    if status.get("phase") == "Succeeded":
        return True
    if status.get("phase") != "Running":
        return False
    containers = status.get("containerStatuses") or []
    return all(c.get("ready") or not c.get("restartCount") for c in containers)


# --- reading them from the cluster ------------------------------------------------------------------------
#: What a check of the cluster answers: the cause when pods cannot start, True once they started, False while
#: they are still on their way (created, scheduled, pulling) with nothing known to stop them.
Startup = CannotStart | bool


def check_job(core: client.CoreV1Api, job: Mapping[str, Any]) -> Startup:
    """Job `job` (its JSON): its pods and its own Events; no request at all while every active pod is ready."""
    meta, status = job["metadata"], job.get("status") or {}
    if status.get("succeeded") or (status.get("active") and status.get("ready") == status.get("active")):
        return True
    namespace, uid = meta["namespace"], meta["uid"]
    pods = [
        pod
        for pod in _items(core.list_namespaced_pod, namespace, label_selector=f"job-name={meta['name']}")
        if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])
    ]
    events = _items(core.list_namespaced_event, namespace, field_selector=f"involvedObject.uid={uid}")
    return why_not_started(pods, events, {"kind": "Job", **job}) or running(pods)


def check_pods(
    core: client.CoreV1Api, namespace: str, selector: str, owner: Mapping[str, Any] | None = None
) -> Startup:
    """The pods matching `selector`, and the ReplicaFailure condition of Deployment `owner` (its JSON) if given."""
    pods = _items(core.list_namespaced_pod, namespace, label_selector=selector)
    return why_not_started(pods, (), {"kind": "Deployment", **owner} if owner else None) or running(pods)


def check_pod(pod: Mapping[str, Any]) -> Startup:
    """One pod the door created itself (its JSON, already read)."""
    return why_not_started([pod]) or running([pod])


def _items(list_call: Callable[..., Any], namespace: str, **selector: str) -> list[dict[str, Any]]:
    """A list request's items as the API's own JSON (not deserialised into the client's typed objects)."""
    response = list_call(namespace, _preload_content=False, **selector)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def as_json(obj: Any) -> dict[str, Any]:
    """A typed object of the client (V1Job, V1Pod, ...) as the API's own JSON, for the checks above."""
    converted: dict[str, Any] = _serializer().sanitize_for_serialization(obj)
    return converted


@cache
def _serializer() -> client.ApiClient:
    from kubernetes import client

    return client.ApiClient()


# --- reporting it -----------------------------------------------------------------------------------------


class StartReporter:
    """Keeps one resource's `PodsStarted` condition in step with why its pods cannot start.

    False (with a Warning Event) when a cause appears or changes, True (with a Normal Event) once the pods
    start after that; nothing is written while all goes well. It never fails the resource: the user fixes
    the cause and the work goes on. `write` stores one condition among the resource's others; `emit` posts
    an Event (reason, message, warning).
    """

    def __init__(
        self,
        conditions: Sequence[Mapping[str, Any]],
        write: Callable[[dict[str, Any]], None],
        emit: Callable[[str, str, bool], None],
        generation: int | None,
        every: float = CHECK_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.current = next((dict(c) for c in conditions if c.get("type") == PODS_STARTED), None)
        self.write, self.emit, self.generation = write, emit, generation
        self.every, self.clock = every, clock
        self._checked: float | None = None

    def check(self, find: Callable[[], Startup]) -> None:
        """Call `find` (which reads the cluster) at most once per `every` seconds, and report its answer."""
        now = self.clock()
        if self._checked is not None and now - self._checked < self.every:
            return
        self._checked = now
        self.report(find())

    def report(self, answer: Startup) -> None:
        """Write the condition when the answer differs from what it says now (by reason: messages jitter)."""
        current = self.current
        if answer is False:
            return
        if answer is True:
            if current is None or current.get("status") == "True":
                return
            made = condition(PODS_STARTED, True, "Started", "the pods started", self.generation)
            self.write(made)
            self.emit(PODS_STARTED, f"the pods started ({current.get('reason')} resolved)", False)
        else:
            if current is not None and current.get("status") == "False" and current.get("reason") == answer.reason:
                return
            made = condition(PODS_STARTED, False, answer.reason, answer.message, self.generation)
            self.write(made)
            self.emit(answer.reason, answer.message, True)
        self.current = made
