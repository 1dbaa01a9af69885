"""Why pods cannot start, named from API objects shaped as the API server returns them; the reporter's condition."""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.kube.conditions import merged
from kubeinfer.kube.pod_start import PODS_STARTED, CannotStart, StartReporter, check_pod, why_not_started

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "quickstart-prepare", "namespace": "demo", "uid": "9d1c"},
    "status": {"active": 0, "ready": 0},
}
SA_EVENT = {
    "kind": "Event",
    "involvedObject": {"kind": "Job", "name": "quickstart-prepare", "uid": "9d1c"},
    "reason": "FailedCreate",
    "type": "Warning",
    "message": 'Error creating: pods "quickstart-prepare-x7k2p" is forbidden: error looking up service account '
    'demo/kubeinfer-runner: serviceaccount "kubeinfer-runner" not found',
    "firstTimestamp": "2025-05-01T10:00:01Z",
    "lastTimestamp": "2025-05-01T10:00:41Z",
    "count": 6,
}


def pod(name: str = "p-1", created: str = "2025-05-01T10:00:00Z", **status: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"containers": [{"name": "runner", "image": "kubeinfer:dev"}]},
        "status": {"phase": "Pending", **status},
    }


def unscheduled(message: str) -> dict[str, Any]:
    return pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": "2025-05-01T10:00:02Z",
            }
        ]
    )


def waiting(reason: str, message: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    state = {"waiting": {"reason": reason, "message": message}}
    scheduled = {"type": "PodScheduled", "status": "True"}
    return pod(conditions=[scheduled], **{key: [{"name": "runner", "image": "kubeinfer:dev", "state": state}]})


def test_a_job_that_cannot_create_its_pod_names_the_missing_service_account() -> None:
    found = why_not_started([], [SA_EVENT], JOB)
    assert found is not None
    assert found.reason == "ServiceAccountMissing"
    assert found.message.startswith("Job quickstart-prepare cannot create pods: Error creating:")
    assert 'serviceaccount "kubeinfer-runner" not found' in found.message


def test_other_create_failures_are_create_failed_with_the_api_s_words() -> None:
    quota = SA_EVENT | {
        "message": 'Error creating: pods "w-0" is forbidden: exceeded quota: compute, requested: cpu=2, '
        "used: cpu=8, limited: cpu=8"
    }
    found = why_not_started([], [quota], JOB)
    assert found == CannotStart("CreateFailed", f"Job quickstart-prepare cannot create pods: {quota['message']}")


def test_a_create_failure_older_than_the_newest_pod_is_resolved() -> None:
    later = pod(created="2025-05-01T10:01:00Z", phase="Running")
    assert why_not_started([later], [SA_EVENT], JOB) is None
    earlier = pod(created="2025-05-01T09:59:00Z", phase="Running")
    assert why_not_started([earlier], [SA_EVENT], JOB) is not None


def test_an_event_series_counts_from_its_last_observation() -> None:
    series = {
        "reason": "FailedCreate",
        "message": SA_EVENT["message"],
        "eventTime": "2025-05-01T10:00:01.000000Z",
        "series": {"count": 4, "lastObservedTime": "2025-05-01T10:02:00.000000Z"},
    }
    assert why_not_started([pod(created="2025-05-01T10:01:00Z")], [series], JOB) is not None


def test_events_other_than_failed_create_say_nothing() -> None:
    created = SA_EVENT | {"reason": "SuccessfulCreate", "type": "Normal", "message": "Created pod: p-1"}
    assert why_not_started([], [created], JOB) is None


def test_a_deployment_s_replica_failure_names_its_cause() -> None:
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "m-server"},
        "status": {
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": 'pods "m-server-5d9f-" is forbidden: error looking up service account '
                    'demo/model: serviceaccount "model" not found',
                },
            ]
        },
    }
    found = why_not_started([], (), deployment)
    assert found is not None
    assert found.reason == "ServiceAccountMissing"
    assert found.message.startswith("Deployment m-server cannot create pods: ")


def test_an_unschedulable_pod_quotes_the_scheduler() -> None:
    message = (
        "0/4 nodes are available: 1 node(s) had untolerated taint {kubeinfer.dev/pool: gpu}, "
        "3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: "
        "4 Preemption is not helpful for scheduling."
    )
    found = why_not_started([unscheduled(message)])
    assert found == CannotStart("Unschedulable", f"Pod p-1 cannot be scheduled: {message}")


@pytest.mark.parametrize(
    "message",
    [
        '0/4 nodes are available: persistentvolumeclaim "kubeinfer-data" not found. preemption: 0/4 nodes are '
        "available: 4 Preemption is not helpful for scheduling.",
        "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are "
        "available: 1 Preemption is not helpful for scheduling.",
        '0/1 nodes are available: persistentvolumeclaim "model-cache" is being deleted.',
    ],
)
def test_a_missing_or_unbound_claim_is_claim_missing(message: str) -> None:
    found = why_not_started([unscheduled(message)])
    assert found is not None
    assert found.reason == "ClaimMissing"
    assert message in found.message


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImageNeverPull", 'Container image "kubeinfer:dev" is not present with pull policy of Never'),
        ("ImagePullBackOff", 'Back-off pulling image "kubeinfer:dev"'),
        ("ErrImagePull", 'failed to pull and unpack image "docker.io/library/kubeinfer:dev": not found'),
        ("InvalidImageName", 'Failed to apply default image tag "Kubeinfer:DEV": invalid reference format'),
    ],
)
def test_an_image_the_node_cannot_have_is_image_not_present(reason: str, message: str) -> None:
    found = why_not_started([waiting(reason, message)])
    assert found == CannotStart("ImageNotPresent", f"Pod p-1 container runner cannot start: {reason}: {message}")


def test_a_container_config_error_is_create_failed_and_init_containers_count() -> None:
    message = 'secret "hf-token" not found'
    found = why_not_started([waiting("CreateContainerConfigError", message, init=True)])
    assert found is not None
    assert found.reason == "CreateFailed"
    assert message in found.message


def test_pods_on_their_way_finished_or_leaving_say_nothing() -> None:
    creating = waiting("ContainerCreating", "")
    assert why_not_started([creating]) is None
    assert why_not_started([pod()]) is None  # not yet seen by the scheduler
    done = unscheduled("0/1 nodes are available") | {"status": {"phase": "Succeeded"}}
    assert why_not_started([done]) is None
    leaving = unscheduled("0/1 nodes are available")
    leaving["metadata"]["deletionTimestamp"] = "2025-05-01T10:05:00Z"
    assert why_not_started([leaving]) is None


def test_a_check_answers_the_cause_true_once_running_and_false_on_the_way() -> None:
    assert isinstance(check_pod(unscheduled("0/1 nodes are available")), CannotStart)
    assert check_pod(pod(phase="Running")) is True
    assert check_pod(pod()) is False


class Recorder:
    def __init__(self) -> None:
        self.conditions: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, bool]] = []
        self.now = 0.0

    def write(self, made: dict[str, Any]) -> None:
        self.conditions = merged(self.conditions, made)

    def emit(self, reason: str, message: str, warning: bool) -> None:
        self.events.append((reason, message, warning))

    def reporter(self) -> StartReporter:
        return StartReporter(self.conditions, self.write, self.emit, 3, every=10, clock=lambda: self.now)


def test_the_reporter_sets_the_condition_once_per_cause_and_clears_it_when_pods_start() -> None:
    seen = Recorder()
    reporter = seen.reporter()
    reporter.report(True)  # all well from the start: nothing written
    assert seen.conditions == []
    assert seen.events == []
    blocked = CannotStart("ServiceAccountMissing", 'serviceaccount "kubeinfer-runner" not found')
    reporter.report(blocked)
    reporter.report(CannotStart("ServiceAccountMissing", "the same cause, worded again"))
    reporter.report(False)  # pods on their way: no change
    [written] = seen.conditions
    assert (written["type"], written["status"], written["reason"]) == (PODS_STARTED, "False", "ServiceAccountMissing")
    assert written["message"] == blocked.message
    assert written["observedGeneration"] == 3
    assert seen.events == [("ServiceAccountMissing", blocked.message, True)]
    reporter.report(True)
    [cleared] = seen.conditions
    assert (cleared["status"], cleared["reason"]) == ("True", "Started")
    assert seen.events[-1] == (PODS_STARTED, "the pods started (ServiceAccountMissing resolved)", False)


def test_a_restarted_reporter_carries_on_from_the_condition_in_the_status() -> None:
    seen = Recorder()
    seen.reporter().report(CannotStart("Unschedulable", "0/3 nodes are available"))
    again = seen.reporter()
    again.report(CannotStart("Unschedulable", "0/3 nodes are available"))
    assert len(seen.events) == 1
    again.report(CannotStart("ClaimMissing", 'persistentvolumeclaim "x" not found'))
    assert [c["reason"] for c in seen.conditions] == ["ClaimMissing"]


def test_the_reporter_reads_the_cluster_at_most_once_per_interval() -> None:
    seen = Recorder()
    reporter = seen.reporter()
    calls: list[float] = []

    def find() -> bool:
        calls.append(seen.now)
        return False

    for now in (0.0, 4.0, 9.9, 10.0, 15.0, 20.5):
        seen.now = now
        reporter.check(find)
    assert calls == [0.0, 10.0, 20.5]


def test_merged_conditions_replace_by_type_and_keep_the_transition_time_while_the_status_holds() -> None:
    old = [
        {"type": "Installed", "status": "True", "reason": "Verified", "lastTransitionTime": "2025-05-01T10:00:00Z"},
        {"type": "Ready", "status": "False", "reason": "Starting", "lastTransitionTime": "2025-05-01T10:00:00Z"},
    ]
    same = {"type": "Ready", "status": "False", "reason": "Waiting", "lastTransitionTime": "2025-05-01T11:00:00Z"}
    new = {"type": PODS_STARTED, "status": "False", "reason": "Unschedulable", "lastTransitionTime": "x"}
    result = merged(old, same, new)
    assert [c["type"] for c in result] == ["Installed", "Ready", PODS_STARTED]
    assert result[1]["reason"] == "Waiting"
    assert result[1]["lastTransitionTime"] == "2025-05-01T10:00:00Z"
    flipped = merged(result, same | {"status": "True"})
    assert flipped[1]["lastTransitionTime"] == "2025-05-01T11:00:00Z"
    assert old[1]["reason"] == "Starting"  # the input is not changed


def crash_looping(restarts: int = 4, **last: Any) -> dict[str, Any]:
    terminated = {"exitCode": 1, "reason": "Error", **last}
    status = {
        "name": "server",
        "image": "kubeinfer-llama-server:dev",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": terminated},
    }
    return pod(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}], containerStatuses=[status])


def test_a_crash_loop_names_the_last_exit_and_where_the_log_is() -> None:
    found = why_not_started([crash_looping(message="error: unknown argument: --bogus\n")])
    assert found is not None
    assert found.reason == "CrashLoop"
    assert "container server keeps exiting (CrashLoopBackOff, 4 restarts)" in found.message
    assert "last exit code 1 (Error): error: unknown argument: --bogus" in found.message
    assert "kubectl logs p-1 -c server --previous" in found.message


def test_a_crash_loop_without_a_recorded_exit_still_reads() -> None:
    looping = crash_looping()
    looping["status"]["containerStatuses"][0]["lastState"] = {}
    found = why_not_started([looping])
    assert found is not None
    assert "last exit code ? (no reason given)" in found.message


def test_a_restarted_container_counts_as_started_only_once_ready_again() -> None:
    between_crashes = crash_looping()
    container = between_crashes["status"]["containerStatuses"][0]
    container["state"] = {"running": {"startedAt": "2025-05-01T10:03:00Z"}}
    assert check_pod(between_crashes) is False, "running for a moment between crashes is not started"
    container["ready"] = True
    assert check_pod(between_crashes) is True
    first_start = pod(phase="Running", containerStatuses=[{"name": "server", "ready": False, "restartCount": 0}])
    assert check_pod(first_start) is True, "a first start counts at once (a server may load for minutes)"
