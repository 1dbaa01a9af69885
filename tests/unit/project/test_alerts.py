"""The chart's alerts (charts/kubeinfer/files/prometheus-rules.yaml) under `promtool test rules`, one case per alert.

The rules are taken from the rendered PrometheusRule, so what is tested is what the chart installs. promtool is
Debian's, unpacked by `make prometheus` (hack/prometheus/install.sh), like the cluster tier's Prometheus.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.helm.chart import CHART, template

TESTS = Path(__file__).parent / "alerts"


def promtool() -> Path:
    cache = Path(os.environ.get("KUBEINFER_CACHE_DIR", Path.home() / ".cache" / "kubeinfer"))
    binary = cache / "prometheus" / "bin" / "promtool"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"promtool is not at {binary}: run `make prometheus` (hack/prometheus/install.sh) first")
    return binary


@pytest.fixture(scope="module")
def rule_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered PrometheusRule's groups as a plain Prometheus rule file."""
    docs = template(CHART / "ci" / "monitoring-values.yaml")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path_factory.mktemp("rules") / "kubeinfer-rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def alert_names(groups: dict[str, Any]) -> set[str]:
    return {r["alert"] for g in groups["groups"] for r in g["rules"] if "alert" in r}


def test_the_rule_file_is_valid_for_promtool(rule_groups: Path) -> None:
    check = subprocess.run([str(promtool()), "check", "rules", str(rule_groups)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_alert_passes_its_promtool_unit_tests(rule_groups: Path, tmp_path: Path) -> None:
    cases = yaml.safe_load((TESTS / "kubeinfer-alerts-test.yaml").read_text())
    tested = {t["alertname"] for case in cases["tests"] for t in case.get("alert_rule_test", [])}
    assert tested == alert_names(yaml.safe_load(rule_groups.read_text()))
    test_file = tmp_path / "kubeinfer-alerts-test.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rule_groups)], **cases}))
    run = subprocess.run([str(promtool()), "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def test_alerts_are_off_unless_enabled() -> None:
    assert not [d for d in template(CHART / "ci" / "cpu-values.yaml") if d["kind"] == "PrometheusRule"]
