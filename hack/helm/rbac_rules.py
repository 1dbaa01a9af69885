"""Write the chart's RBAC rules file from kubeinfer.operator.rbac, the one place the rules are defined.

`make chart-rbac` (run by `make crds`) calls this; tests/unit/project/test_chart.py fails when the file drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from kubeinfer.operator.rbac import GATEWAY_RULES, OPERATOR_RULES, RUNNER_RULES

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "charts" / "kubeinfer" / "files" / "rbac-rules.yaml"
HEADER = "# Generated from kubeinfer/operator/rbac.py by `make chart-rbac`; do not edit.\n"


def render() -> str:
    rules = {"operator": OPERATOR_RULES, "runner": RUNNER_RULES, "gateway": GATEWAY_RULES}
    return HEADER + yaml.safe_dump(rules, sort_keys=False)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
