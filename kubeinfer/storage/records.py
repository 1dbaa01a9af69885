"""Durable metadata of files and batches in SQLite, scoped by project.

Each record is a dataclass stored as JSON next to the few columns that queries filter or order on,
so adding a field never needs a schema migration.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

#: Batch statuses after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


@dataclass
class FileRecord:
    id: str
    project: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    created_at: int = field(default_factory=now)
    status: str = "processed"


@dataclass
class BatchRecord:
    id: str
    project: str
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int = field(default_factory=now)
    expires_at: int | None = None
    status: str = "validating"
    metadata: dict[str, str] | None = None
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Seconds during which at least one of the batch's requests was in flight at the engine.
    inference_seconds: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


_R = TypeVar("_R", FileRecord, BatchRecord)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, project TEXT NOT NULL, purpose TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, project TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labelstudio (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, key TEXT NOT NULL, project TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (kind, key));
CREATE INDEX IF NOT EXISTS files_project ON files (project, seq);
CREATE INDEX IF NOT EXISTS batches_project ON batches (project, seq);
"""


def _load(cls: type[_R], data: str) -> _R:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in json.loads(data).items() if k in names})


class MetadataStore:
    """One SQLite database (WAL) shared by the API handlers and the batch runner."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # files
    def add_file(self, record: FileRecord) -> FileRecord:
        self._query(
            "INSERT INTO files (id, project, purpose, data) VALUES (?, ?, ?, ?)",
            (record.id, record.project, record.purpose, json.dumps(dataclasses.asdict(record))),
        )
        return record

    def get_file(self, file_id: str, project: str | None = None) -> FileRecord | None:
        rows = self._query("SELECT project, data FROM files WHERE id = ?", (file_id,))
        if not rows or (project is not None and rows[0][0] != project):
            return None
        return _load(FileRecord, rows[0][1])

    def list_files(
        self, project: str, purpose: str | None = None, limit: int = 10000, after: str | None = None
    ) -> list[FileRecord]:
        sql, args = "SELECT data FROM files WHERE project = ?", [project]
        if purpose:
            sql += " AND purpose = ?"
            args.append(purpose)
        if after:
            sql += " AND seq < COALESCE((SELECT seq FROM files WHERE id = ?), -1)"
            args.append(after)
        rows = self._query(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))
        return [_load(FileRecord, r[0]) for r in rows]

    def save_file(self, record: FileRecord) -> None:
        self._query(
            "UPDATE files SET purpose = ?, data = ? WHERE id = ?",
            (record.purpose, json.dumps(dataclasses.asdict(record)), record.id),
        )

    def delete_file(self, file_id: str) -> None:
        self._query("DELETE FROM files WHERE id = ?", (file_id,))

    # batches
    def add_batch(self, record: BatchRecord) -> BatchRecord:
        self._query(
            "INSERT INTO batches (id, project, status, data) VALUES (?, ?, ?, ?)",
            (record.id, record.project, record.status, json.dumps(dataclasses.asdict(record))),
        )
        return record

    def save_batch(self, record: BatchRecord) -> None:
        self._query(
            "UPDATE batches SET status = ?, data = ? WHERE id = ?",
            (record.status, json.dumps(dataclasses.asdict(record)), record.id),
        )

    def get_batch(self, batch_id: str, project: str | None = None) -> BatchRecord | None:
        rows = self._query("SELECT project, data FROM batches WHERE id = ?", (batch_id,))
        if not rows or (project is not None and rows[0][0] != project):
            return None
        return _load(BatchRecord, rows[0][1])

    def list_batches(
        self,
        project: str | None,
        limit: int,
        after: str | None = None,
        status: str | None = None,
        oldest_first: bool = False,
    ) -> list[BatchRecord]:
        sql, args = "SELECT data FROM batches WHERE 1 = 1", []
        if project is not None:
            sql += " AND project = ?"
            args.append(project)
        if status:
            sql += " AND status = ?"
            args.append(status)
        if after:
            sql += " AND seq < COALESCE((SELECT seq FROM batches WHERE id = ?), -1)"
            args.append(after)
        sql += f" ORDER BY seq {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        rows = self._query(sql, (*args, limit))
        return [_load(BatchRecord, r[0]) for r in rows]

    # Label Studio connections and webhook jobs (kubeinfer.gateway.labelstudio), as JSON objects
    def put_labelstudio(self, kind: str, key: str, project: str, data: dict[str, Any]) -> None:
        self._query(
            "INSERT INTO labelstudio (kind, key, project, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET project = excluded.project, data = excluded.data",
            (kind, key, project, json.dumps(data)),
        )

    def add_labelstudio(self, kind: str, key: str, project: str, data: dict[str, Any]) -> bool:
        """Insert unless the key exists; False when it did (a webhook delivered twice)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO labelstudio (kind, key, project, data) VALUES (?, ?, ?, ?)",
                (kind, key, project, json.dumps(data)),
            )
            return cursor.rowcount == 1

    def get_labelstudio(self, kind: str, key: str, project: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT data FROM labelstudio WHERE kind = ? AND key = ? AND project = ?", (kind, key, project)
        )
        return dict(json.loads(rows[0][0])) if rows else None

    def list_labelstudio(self, kind: str, project: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT data FROM labelstudio WHERE kind = ? AND project = ? ORDER BY seq DESC LIMIT ?",
            (kind, project, limit),
        )
        return [dict(json.loads(r[0])) for r in rows]

    def unfinished_batches(self) -> list[BatchRecord]:
        """Batches a restarted gateway must pick up again, oldest first."""
        marks = ",".join("?" * len(TERMINAL_STATUSES))
        rows = self._query(
            f"SELECT data FROM batches WHERE status NOT IN ({marks}) ORDER BY seq ASC",  # noqa: S608
            tuple(sorted(TERMINAL_STATUSES)),
        )
        return [_load(BatchRecord, r[0]) for r in rows]
