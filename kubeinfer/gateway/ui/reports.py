"""Benchmark reports on disk: `<reports_dir>/<matrix>/report.json`, as `kubeinfer bench run -o` writes them.

Matrices are looked up among the folder's entries by name, never by joining a path from the request,
so a name cannot reach outside the reports folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kubeinfer.bench.report import ReportData, as_report_data

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


class ReportNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such benchmark matrix report: {name}")


@dataclass(frozen=True)
class MatrixReport:
    """One report folder; `data` is None and `error` says why when its report.json cannot be read."""

    name: str
    folder: Path
    data: ReportData | None
    error: str | None

    @property
    def has_html(self) -> bool:
        return (self.folder / REPORT_HTML).is_file()


def read_report(name: str, folder: Path) -> MatrixReport:
    path = folder / REPORT_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("results"), list):
            raise ValueError("it has no 'results' list")
        return MatrixReport(name, folder, as_report_data(document), None)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return MatrixReport(name, folder, None, f"not a kubeinfer report: {where}: {first['msg']}")
    except (OSError, ValueError, TypeError) as exc:
        return MatrixReport(name, folder, None, f"not a kubeinfer report: {exc}")


def _folders(root: Path | None) -> dict[str, Path]:
    if root is None or not root.is_dir():
        return {}
    return {entry.name: entry for entry in sorted(root.iterdir()) if (entry / REPORT_JSON).is_file()}


def find_reports(root: Path | None) -> list[MatrixReport]:
    """Every report under `root`, newest first by report.json's modification time."""
    folders = _folders(root)
    ordered = sorted(folders.items(), key=lambda item: (item[1] / REPORT_JSON).stat().st_mtime, reverse=True)
    return [read_report(name, folder) for name, folder in ordered]


def find_report(root: Path | None, name: str) -> MatrixReport:
    folder = _folders(root).get(name)
    if folder is None:
        raise ReportNotFound(name)
    return read_report(name, folder)
