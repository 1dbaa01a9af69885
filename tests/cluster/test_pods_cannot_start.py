"""Resources whose pods cannot start say why (the `PodsStarted` condition and a Warning Event) and carry on.

On the kind cluster: the API server's ServiceAccount admission, the Job controller, the PV binder and the
scheduler are real, so the causes are the ones a user meets. The pods land on kwok's simulated CPU nodes (the
operator's `cpu` pool is not aliased to the real node here), which mark them running and end a Job's pods as
succeeded without running a container: enough to tell "cannot be created or scheduled" from "started", not to
run the work. The missing image is tried on the real node, whose kubelet fails to pull it; the classifier's
unit tests cover its status shape. The unschedulable model server is in test_model_install.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.kube.pod_start import PODS_STARTED
from kubeinfer.operator.rbac import runner_objects
from kubeinfer.settings import OperatorSettings
from testbed.kind import REPO_ROOT, KindCluster
from testbed.namespace_env import NamespaceEnv, data_volume, namespace_env
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(600)

#: The `cpu` pool is kwok's simulated nodes here, not the real node.
KWOK_POOLS = {"KUBEINFER_OPERATOR__POOL_ALIASES": "{}"}
RUNNER_SA = OperatorSettings().runner_service_account
DATA_CLAIM = OperatorSettings().batch_data_claim


#: An image no node has and no registry serves: the kubelet's pull goes to the node's own loopback and fails.
MISSING_IMAGE = "localhost:1/kubeinfer/not-loaded:0"


@contextmanager
def operator_namespace(
    cluster: KindCluster, models_root: Path, workdir: Path, operator_env: dict[str, str]
) -> Iterator[NamespaceEnv]:
    """A fresh namespace with the operator running in it; its BatchJobs are deleted first, then the namespace."""
    namespace = f"nostart-{uuid.uuid4().hex[:6]}"
    try:
        with namespace_env(
            cluster,
            namespace,
            models_root,
            workdir,
            operator_env=operator_env,
            clean_up=("batchjobs", "benchmarkmatrices"),
        ) as prepared:
            yield prepared
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def env(kube_cluster: KindCluster, tmp_path: Path) -> Iterator[NamespaceEnv]:
    with operator_namespace(kube_cluster, tmp_path / "models", tmp_path / "work", KWOK_POOLS) as prepared:
        yield prepared


def status_of(env: NamespaceEnv, kind: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = env.cluster.get_json(kind, name, "-n", env.namespace).get("status") or {}
    return status


def first_status(env: NamespaceEnv, kind: str, name: str) -> dict[str, Any]:
    """The status as the operator's first write left it (polled until there is one)."""
    return wait_for(lambda: status_of(env, kind, name), timeout=60, what=f"a status on {kind} {name}")


def pods_started(env: NamespaceEnv, kind: str, name: str, status: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        conditions = status_of(env, kind, name).get("conditions") or []
        return next((c for c in conditions if c["type"] == PODS_STARTED and c["status"] == status), None)

    return check


def warnings(env: NamespaceEnv, name: str) -> list[str]:
    selector = f"involvedObject.name={name},type=Warning"
    items = env.cluster.get_json("events", "-n", env.namespace, "--field-selector", selector)["items"]
    return [f"{e['reason']}: {e['message']}" for e in items]


def test_a_matrix_without_the_runner_service_account_says_so_and_goes_on_once_it_exists(env: NamespaceEnv) -> None:
    """The README's quickstart in a namespace without `kubeinfer-runner`: the hang a user reported."""
    env.cluster.kubectl("delete", "serviceaccount", RUNNER_SA, "-n", env.namespace)
    env.cluster.kubectl("apply", "-n", env.namespace, "-f", str(REPO_ROOT / "examples" / "quickstart.yaml"))

    assert first_status(env, "benchmarkmatrix", "quickstart")["phase"] in ("Pending", "Running")
    printed = env.cluster.kubectl("get", "bm", "quickstart", "-n", env.namespace).stdout
    assert printed.split("\n")[1].split()[1] in ("Pending", "Running"), printed

    blocked = wait_for(pods_started(env, "benchmarkmatrix", "quickstart", "False"), timeout=60, what="PodsStarted")
    assert blocked["reason"] == "ServiceAccountMissing"
    assert f'serviceaccount "{RUNNER_SA}" not found' in blocked["message"]
    assert blocked["message"].startswith("Job quickstart-"), blocked["message"]
    assert status_of(env, "benchmarkmatrix", "quickstart")["phase"] == "Running"
    assert any(w.startswith("ServiceAccountMissing: Job quickstart-") for w in warnings(env, "quickstart"))

    env.apply(runner_objects(env.namespace))
    started = wait_for(pods_started(env, "benchmarkmatrix", "quickstart", "True"), timeout=180, what="pods started")
    assert started["reason"] == "Started"


def test_a_batch_without_its_data_claim_says_so_and_goes_on_once_the_claim_exists(
    env: NamespaceEnv, tmp_path: Path
) -> None:
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "no-claim"},
        "spec": {"inputFileId": "file-nowhere"},
    }
    env.cluster.kubectl("apply", "-n", env.namespace, "-f", "-", stdin=yaml.safe_dump(body))

    assert first_status(env, "batchjob", "no-claim")["status"] == "validating"
    blocked = wait_for(pods_started(env, "batchjob", "no-claim", "False"), timeout=60, what="PodsStarted")
    assert blocked["reason"] == "ClaimMissing"
    assert f'persistentvolumeclaim "{DATA_CLAIM}" not found' in blocked["message"]
    assert blocked["message"].startswith("Pod no-claim-validate-"), blocked["message"]
    assert status_of(env, "batchjob", "no-claim")["status"] == "validating"
    assert any(w.startswith("ClaimMissing: Pod no-claim-validate-") for w in warnings(env, "no-claim"))

    env.apply(data_volume(tmp_path / "data", env.namespace))
    started = wait_for(pods_started(env, "batchjob", "no-claim", "True"), timeout=180, what="pods started")
    assert started["reason"] == "Started"


def test_a_matrix_whose_runner_image_is_not_on_the_node_says_so(
    kube_cluster: KindCluster, cluster_models_root: Path, tmp_path: Path
) -> None:
    """On the real node (the operator's usual `cpu` alias): the kubelet cannot pull the image, the condition
    names it within a minute and the matrix keeps waiting instead of failing."""
    operator_env = {"KUBEINFER_OPERATOR__RUNNER_IMAGE": MISSING_IMAGE}
    with operator_namespace(kube_cluster, cluster_models_root, tmp_path / "work", operator_env) as env:
        env.cluster.kubectl("apply", "-n", env.namespace, "-f", str(REPO_ROOT / "examples" / "quickstart.yaml"))

        # a fresh namespace's claims may be unbound for a moment first (ClaimMissing): true, and not this test's cause
        def image_not_present() -> dict[str, Any] | None:
            found = pods_started(env, "benchmarkmatrix", "quickstart", "False")()
            return found if found and found["reason"] == "ImageNotPresent" else None

        blocked = wait_for(image_not_present, timeout=120, what="PodsStarted=False ImageNotPresent")
        assert MISSING_IMAGE in blocked["message"] or "ErrImagePull" in blocked["message"], blocked
        assert status_of(env, "benchmarkmatrix", "quickstart")["phase"] == "Running"
        assert any(w.startswith("ImageNotPresent: ") for w in warnings(env, "quickstart"))
