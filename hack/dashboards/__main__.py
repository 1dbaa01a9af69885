"""`make dashboards`: write charts/kubeinfer/dashboards/*.json from hack/dashboards/build.py (a test checks drift)."""

from __future__ import annotations

import sys
from pathlib import Path

from hack.dashboards.build import render_all


def main(argv: list[str]) -> int:
    out = (
        Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "charts" / "kubeinfer" / "dashboards"
    )
    out.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in {p.name for p in out.glob("*.json")} - set(rendered):
        (out / stale).unlink()
    for name, text in rendered.items():
        (out / name).write_text(text)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
