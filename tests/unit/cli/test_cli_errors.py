"""Broken CLI input gets a one-line error and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeinfer.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_pull_of_an_unknown_model_names_the_bundled_ones() -> None:
    code, output = run("models", "pull", "llama-70b")
    assert code == 1
    assert "unknown model 'llama-70b'; bundled models: gemma3-270m, smollm2-135m" in output


def test_pull_with_a_bad_quantization_name() -> None:
    code, output = run("models", "pull", "smollm2-135m", "--quant", "Q4_KM")
    assert code == 1
    assert "not a GGUF quantization name: Q4_KM" in output


def test_analyze_of_a_missing_cached_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEINFER_MODEL_DIR", str(tmp_path))
    code, output = run("models", "analyze", "smollm2-135m:Q2_K")
    assert code == 1
    assert "not in the model cache" in output


def test_analyze_of_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_text("not a model")
    code, output = run("models", "analyze", str(bogus))
    assert code == 1
    assert str(bogus) in output


def test_show_of_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{broken")
    code, output = run("bench", "show", str(report))
    assert code == 1
    assert "not a kubeinfer report" in output


def test_validate_of_a_broken_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: kubeinfer.dev/v1alpha1\nkind: BenchmarkMatrix\nmetadata: {name: x}\nspec: {}\n")
    code, output = run("bench", "validate", str(manifest))
    assert code == 1
    assert "spec.models" in output


def test_install_without_a_manifest_outside_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEINFER_MODEL_INSTALL", raising=False)
    code, output = run("models", "install")
    assert code == 1
    assert "give a ModelInstall manifest, or set KUBEINFER_MODEL_INSTALL" in output


def test_install_with_broken_resource_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEINFER_MODEL_INSTALL", "{not json")
    code, output = run("models", "install")
    assert code == 1
    assert "KUBEINFER_MODEL_INSTALL: not JSON" in output


def test_install_of_a_missing_manifest(tmp_path: Path) -> None:
    code, output = run("models", "install", str(tmp_path / "absent.yaml"))
    assert code == 1
    assert "absent.yaml" in output


def test_install_with_two_sources_names_the_field(tmp_path: Path) -> None:
    manifest = tmp_path / "mi.yaml"
    manifest.write_text(
        "apiVersion: kubeinfer.dev/v1alpha1\nkind: ModelInstall\nmetadata: {name: m}\n"
        "spec:\n  source: {pypi: smollm2-135m, hf: {repo: o/r, file: m.gguf}}\n  quantization: Q4_1\n"
    )
    code, output = run("models", "install", str(manifest))
    assert code == 1
    assert "spec.source" in output
    assert "set exactly one of hf, pypi, url, pvc (got hf, pypi)" in output


def test_install_of_an_unreachable_url_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 9 on loopback refuses connections: a transfer that never started is a transient error, exit 75."""
    monkeypatch.setenv("KUBEINFER_MODEL_DIR", str(tmp_path / "models"))
    manifest = tmp_path / "mi.yaml"
    manifest.write_text(
        "apiVersion: kubeinfer.dev/v1alpha1\nkind: ModelInstall\nmetadata: {name: m}\n"
        f"spec:\n  source: {{url: {{url: 'http://127.0.0.1:9/m.gguf', sha256: '{'0' * 64}'}}}}\n"
        "  quantization: Q4_1\n"
    )
    code, output = run("models", "install", str(manifest))
    assert code == 75
    assert "run again to resume" in output
