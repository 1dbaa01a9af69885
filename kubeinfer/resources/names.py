"""The one place for kubeinfer's API names: group, version, plurals, kinds, labels, annotations, child names.

Every name of an object the operator creates is a pure function of its parent's name, so a restarted operator
(or the gateway, the CLI, a pod step) finds the object again without storing where it put it.
"""

from __future__ import annotations

import hashlib
import re

GROUP = "kubeinfer.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# --- resources -------------------------------------------------------------------------------------------

MATRIX_KIND, MATRIX_PLURAL = "BenchmarkMatrix", "benchmarkmatrices"
INSTALL_KIND, INSTALL_PLURAL = "ModelInstall", "modelinstalls"
BATCH_KIND, BATCH_PLURAL = "BatchJob", "batchjobs"
FINALIZER = f"{GROUP}/finalizer"

# --- labels and annotations ------------------------------------------------------------------------------

MANAGED_BY_KEY, MANAGED_BY_VALUE = "app.kubernetes.io/managed-by", "kubeinfer"
MANAGED_BY = {MANAGED_BY_KEY: MANAGED_BY_VALUE}
MATRIX_LABEL = f"{GROUP}/matrix"
CELL_LABEL = f"{GROUP}/cell"
COMPONENT_LABEL = f"{GROUP}/component"
ROLE_LABEL = f"{GROUP}/role"
INSTALL_LABEL = f"{GROUP}/model-install"
QUANT_LABEL = f"{GROUP}/quantization"
BATCH_LABEL = f"{GROUP}/batch"
#: The project a BatchJob or ModelInstall belongs to; an object without it is shared by every project.
PROJECT_LABEL = f"{GROUP}/project"
#: The node label (and taint key) naming a node's pool; the operator's settings may name another.
POOL_LABEL = f"{GROUP}/pool"
#: Unix seconds of the last time something needed the model served (a BatchJob writes it while it runs).
DEMAND_ANNOTATION = f"{GROUP}/last-demand"
#: Nanoseconds at creation: orders batches created within the same second (creationTimestamp has seconds).
SEQUENCE_ANNOTATION = f"{GROUP}/created-ns"
#: Where a pod step writes its JSON inside a result ConfigMap.
RESULT_KEY = "result.json"
#: Where a finished matrix's report lives inside its report ConfigMap.
REPORT_KEY = "report.json"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- children of a BenchmarkMatrix -----------------------------------------------------------------------


def child_name(matrix: str, cell_key: str, component: str, limit: int = 52) -> str:
    """`<matrix>-<cell>-<component>`, shortened with a hash when longer than `limit`.

    52 leaves room for the suffix the Job controller adds to pod names within the 63-character limit.
    """
    name = f"{slug(matrix)}-{slug(cell_key)}-{component}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(component) - 10]}-{digest}-{component}"


def child_labels(matrix: str, cell_key: str, component: str) -> dict[str, str]:
    return {**MANAGED_BY, MATRIX_LABEL: slug(matrix)[:63], CELL_LABEL: slug(cell_key)[:63], COMPONENT_LABEL: component}


def result_name(job_name: str) -> str:
    """The ConfigMap a matrix cell's or a ModelInstall's Job writes its result to."""
    return f"{job_name}-result"


def report_name(matrix: str) -> str:
    return f"{matrix}-report"


def records_name(job_name: str, part: int) -> str:
    """Part `part` of the raw per-request records a matrix cell's measure Job sent (kubeinfer/kube/record_maps.py)."""
    return f"{job_name}-requests-{part}"


# --- children of a ModelInstall --------------------------------------------------------------------------


def install_labels(name: str, component: str) -> dict[str, str]:
    return {**MANAGED_BY, INSTALL_LABEL: slug(name)[:63], COMPONENT_LABEL: component}


def install_job_name(name: str, generation: int) -> str:
    return f"{slug(name)[:40]}-install-g{generation}"


def progress_name(job_name: str) -> str:
    return f"{job_name}-progress"


def deployment_name(name: str) -> str:
    return f"{slug(name)[:50]}-server"


def service_name(name: str) -> str:
    """The Service in front of ModelInstall `name`'s servers (batch workers find their endpoints through it)."""
    return slug(name)[:63]


# --- children of a BatchJob ------------------------------------------------------------------------------


def batch_labels(batch: str, component: str) -> dict[str, str]:
    return {**MANAGED_BY, BATCH_LABEL: batch, COMPONENT_LABEL: component}


def batch_job_name(batch: str, component: str) -> str:
    return f"{batch}-{component}"


def batch_result_name(batch: str, component: str) -> str:
    return f"{batch}-{component}-result"


def shard_progress_prefix(batch: str) -> str:
    """Shard i of a BatchJob writes its progress to ConfigMap `<prefix>-<i>`."""
    return f"{batch}-shard"
