"""The CLI's shape: one group per noun, one meaning per flag, old spellings hidden but working, no tracebacks."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubeinfer import __version__
from kubeinfer.cli.app import app
from kubeinfer.cli.ops_target import target
from kubeinfer.cli.output import Output, format_or_path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.output


def kubeconfig_file(path: Path, contexts: dict[str, str], current: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "c", "user": "u", "namespace": namespace}}
                    for name, namespace in contexts.items()
                ],
                "current-context": current,
            }
        )
    )
    return path


def test_version_prints_the_package_version() -> None:
    code, stdout, _ = invoke("--version")
    assert code == 0
    assert stdout.strip() == f"kubeinfer {__version__}"


def test_top_level_help_hides_in_pod_commands_and_old_names() -> None:
    code, stdout, _ = invoke("--help")
    assert code == 0
    listed = {line.split()[1] for line in stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert {"engine", "models", "bench", "gateway", "batch", "workers", "operator"} <= listed
    assert not {"batches", "step", "cell"} & listed
    assert "--install-completion" in stdout


def test_batch_group_lists_the_resource_verbs() -> None:
    code, stdout, _ = invoke("batch", "--help")
    assert code == 0
    for verb in ("create", "list", "get", "wait", "cancel", "download", "analyze"):
        assert f"│ {verb} " in stdout
    assert "│ submit " not in stdout


@pytest.mark.parametrize(
    "args",
    [
        ["batches", "list"],
        ["batches", "show", "x"],
        ["batches", "cancel", "x"],
        ["batch", "submit", "x"],
        ["batch", "show", "x"],
        ["workers", "status"],
        ["models", "clean-partials", "x"],
        ["engine", "serve"],
        ["step", "install"],
        ["cell", "prepare"],
    ],
)
def test_hidden_commands_still_answer(args: list[str]) -> None:
    code, _, output = invoke(*args, "--help")
    assert code == 0, output


def test_a_missing_operator_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As `pip install kubeinfer` without [operator] leaves it: importing kopf or kubernetes fails."""
    monkeypatch.setitem(sys.modules, "kopf", None)
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    for args in (["operator", "run"], ["batch", "list", "-n", "team"], ["bench", "report", "q"]):
        code, _, output = invoke(*args)
        assert code == 1, output
        assert "install kubeinfer[operator] for cluster commands" in output
        assert "Traceback" not in output
        assert len(output.strip().splitlines()) == 1


def test_from_csv_writes_one_request_per_row_of_the_shipped_example(tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    template = "Sentiment of: {review}"
    code, _, output = invoke("batch", "from-csv", str(EXAMPLES / "reviews.csv"), "--template", template, "-O", str(out))
    assert code == 0, output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    assert lines[0]["body"]["messages"][-1]["content"].startswith("Sentiment of: Great sound")


def test_old_dash_o_file_still_writes_the_file_with_a_note(tmp_path: Path) -> None:
    out = tmp_path / "old.jsonl"
    csv_path = EXAMPLES / "reviews.csv"
    code, _, output = invoke("batch", "from-csv", str(csv_path), "--template", "{review}", "-o", str(out))
    assert code == 0, output
    assert len(out.read_text().splitlines()) == 8


def test_format_or_path_keeps_an_old_folder_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert format_or_path("json", "--out-dir") == (Output.json, None)
    assert format_or_path(None, "--out-dir") == (Output.table, None)
    assert format_or_path("results/quickstart", "--out-dir") == (Output.table, Path("results/quickstart"))
    assert "use --out-dir results/quickstart" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["json", "yaml", "name", "table", "wide"])
def test_every_list_takes_every_output_format(fmt: str, tmp_path: Path) -> None:
    code, stdout, output = invoke("models", "list", "-o", fmt, env={"KUBEINFER_MODEL_DIR": str(tmp_path)})
    assert code == 0, output
    if fmt == "json":
        assert json.loads(stdout) == []
    elif fmt == "yaml":
        assert yaml.safe_load(stdout) == []
    elif fmt == "name":
        assert stdout == ""
    else:
        assert "model cache is empty" in stdout


def test_analyze_prints_json_and_yaml_of_the_same_summary(tmp_path: Path) -> None:
    result = tmp_path / "out.jsonl"
    body = {"usage": {"prompt_tokens": 3, "completion_tokens": 2}, "choices": [{"finish_reason": "stop"}]}
    result.write_text(json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": body}}) + "\n")
    _, as_json, _ = invoke("batch", "analyze", str(result), "-o", "json")
    _, as_yaml, _ = invoke("batch", "analyze", str(result), "-o", "yaml")
    assert json.loads(as_json) == yaml.safe_load(as_yaml)
    assert json.loads(as_json)["completion_tokens"] == 2
    code, table, _ = invoke("batch", "analyze", str(result))
    assert code == 0
    assert "success_rate" in table


def test_bench_validate_prints_the_plan() -> None:
    code, stdout, output = invoke("bench", "validate", str(EXAMPLES / "quickstart.yaml"))
    assert code == 0, output
    assert "plan for quickstart" in stdout
    assert "smollm2-135m/Q4_K_M" in stdout


def test_create_refuses_both_or_neither_input(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "KUBECONFIG": str(tmp_path / "none")}
    code, _, output = invoke("batch", "create", env=env)
    assert code == 2
    assert "give a JSONL file or --from-csv CSV" in output


def test_files_go_through_the_gateway_even_with_a_namespace(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_file(tmp_path / "kubeconfig", {"c": "ns"}, "c")
    code, _, output = invoke("batch", "download", "batch-x", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "batch download moves files, which live behind the gateway" in output


def test_a_cluster_option_selects_the_cluster_and_the_namespace_defaults_to_the_context(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_file(tmp_path / "kubeconfig", {"a": "team-a", "b": "team-b"}, "a")
    assert target(None, kubeconfig, "http://gw/v1", "k").namespace == "team-a"
    assert target(None, kubeconfig, "http://gw/v1", "k", context="b").namespace == "team-b"
    assert target("other", None, "http://gw/v1", "k").namespace == "other"


def test_a_gateway_url_wins_when_no_cluster_option_is_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_file(tmp_path / "kubeconfig", {"a": "team-a"}, "a")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    chosen = target(None, None, "http://gw/v1", "k")
    assert (chosen.cluster, chosen.base_url) == (False, "http://gw/v1")
    # with no URL, the kubeconfig in the environment is the target, as for `kubectl kubeinfer ...`
    assert target(None, None, None, None).namespace == "team-a"


def test_the_kubectl_plugin_runs_the_same_app() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-kubeinfer"] == scripts["kubeinfer"] == "kubeinfer.cli:app"


def test_openai_is_a_runtime_dependency_and_kubernetes_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [dep.split(">")[0].split("[")[0] for dep in project["dependencies"]]
    assert "openai" in names
    assert not {"kopf", "kubernetes"} & set(names)
    assert {dep.split(">")[0] for dep in project["optional-dependencies"]["operator"]} == {"kopf", "kubernetes"}
