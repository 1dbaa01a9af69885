"""BenchmarkMatrix manifests: defaults from the seed design and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix
from kubeinfer.resources.loader import ManifestError, load_matrix

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def minimal(**spec_overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "models": [{"name": "smollm2-135m", "size": "135M", "files": {"Q4_1": "pypi:smollm2-135m"}}],
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BenchmarkMatrix",
        "metadata": {"name": "t"},
        "spec": spec,
    }


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def error_of(tmp_path: Path, data: object) -> str:
    with pytest.raises(ManifestError) as info:
        load_matrix(write(tmp_path, data))
    return str(info.value)


def test_quickstart_example_is_valid() -> None:
    matrix = load_matrix(EXAMPLES / "quickstart.yaml")
    assert matrix.metadata.name == "quickstart"
    assert set(matrix.spec.models[0].files) == {"Q4_1", "Q8_0", "Q4_K_M"}


def test_defaults_follow_the_seed_thresholds(tmp_path: Path) -> None:
    spec = load_matrix(write(tmp_path, minimal())).spec
    assert spec.profiles.interactive.min_tokens_per_second == 2
    assert spec.profiles.interactive.max_time_to_first_token_seconds == 30
    assert spec.profiles.long_context.context_sizes == [4096, 8192, 16384, 32768]
    assert spec.profiles.batch.documents == 30
    assert spec.profiles.quality.min_math_score == 80
    assert spec.profiles.stress.max_temperature_celsius == 85
    assert spec.limits.max_load_time_seconds == 300
    assert spec.limits.allow_swap is False
    assert spec.quantization_order[0] == "Q4_K_M"


def test_manifest_round_trips_in_camel_case(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, minimal(engine={"ctxSize": 2048, "parallel": 2})))
    dumped = matrix.to_manifest()
    assert dumped["spec"]["engine"]["ctxSize"] == 2048  # type: ignore[index]
    assert BenchmarkMatrix.model_validate(dumped) == matrix


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_matrix(tmp_path / "absent.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "kind: BenchmarkMatrix\nspec:\n  models: [\n")
    assert "YAML syntax error at line" in message


def test_wrong_kind_is_rejected(tmp_path: Path) -> None:
    assert "expected 'BenchmarkMatrix'" in error_of(tmp_path, {**minimal(), "kind": "ModelInstall"})


def test_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n")


def test_unknown_field_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal(engine={"ctxSise": 4096}))
    assert "spec.engine.ctxSise: unknown field" in message


def test_bad_quantization_name_is_named(tmp_path: Path) -> None:
    data = minimal(models=[{"name": "m", "size": "1B", "files": {"Q4_KM": "pypi:smollm2-135m"}}])
    message = error_of(tmp_path, data)
    assert "spec.models.0.files" in message
    assert "Q4_KM" in message


def test_derived_quantization_needs_a_listed_base(tmp_path: Path) -> None:
    data = minimal(models=[{"name": "m", "size": "1B", "files": {"Q8_0": "quantize:Q4_1"}}])
    assert "derived from Q4_1, which this model does not list" in error_of(tmp_path, data)


def test_unsupported_source_scheme(tmp_path: Path) -> None:
    data = minimal(models=[{"name": "m", "size": "1B", "files": {"Q4_1": "s3://bucket/m.gguf"}}])
    assert "must start with pypi:, file://, hf://" in error_of(tmp_path, data)


def test_negative_threshold_names_the_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal(profiles={"interactive": {"minTokensPerSecond": -1}}))
    assert "spec.profiles.interactive.minTokensPerSecond" in message


def test_duplicate_model_names(tmp_path: Path) -> None:
    model = {"name": "m", "size": "1B", "files": {"Q4_1": "pypi:smollm2-135m"}}
    assert "repeated: m" in error_of(tmp_path, minimal(models=[model, model]))


def test_vllm_needs_a_gpu_pool(tmp_path: Path) -> None:
    assert "vllm needs placement.pool gpu" in error_of(tmp_path, minimal(engine={"type": "vllm"}))


def test_all_profiles_disabled(tmp_path: Path) -> None:
    off = {"enabled": False}
    profiles = dict.fromkeys(("interactive", "longContext", "batch", "quality", "stress"), off)
    assert "at least one profile" in error_of(tmp_path, minimal(profiles=profiles))


def test_bad_size(tmp_path: Path) -> None:
    data = minimal(models=[{"name": "m", "size": "seven", "files": {"Q4_1": "pypi:smollm2-135m"}}])
    assert "spec.models.0.size" in error_of(tmp_path, data)


def test_slo_fields_are_spelled_as_the_docs_spell_them() -> None:
    """`e2eSeconds`, not the `e2ESeconds` a camelCase generator makes of e2e_seconds."""
    from pydantic import ValidationError

    from kubeinfer.resources.benchmark_matrix import Slo

    slo = Slo.model_validate({"ttftSeconds": 1, "itlSeconds": 0.1, "e2eSeconds": 10})
    assert slo.e2e_seconds == 10
    assert set(slo.model_dump(by_alias=True)) == {"ttftSeconds", "itlSeconds", "e2eSeconds", "percentile"}
    with pytest.raises(ValidationError, match="e2ESeconds"):
        Slo.model_validate({"e2ESeconds": 10})
