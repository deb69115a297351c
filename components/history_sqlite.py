"""Chat history in a SQLite file (Python's own sqlite3): the embedded default.

WAL mode, so several server processes on one machine share the file: readers never
block the writer, and writers take turns. Each write transaction starts with BEGIN
IMMEDIATE (it takes the write lock up front, so two writers queue on the busy timeout
instead of one failing with "database is locked" when it upgrades a read lock), and a
writer waits up to BUSY_TIMEOUT for its turn. synchronous=FULL: a message is on disk
when add() returns, so a stored message survives a power cut, not only a killed process.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, ClassVar

from .errors import InvalidHistoryStore
from .history import HistoryStore

BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another process's write to finish."""


class SqliteHistory(HistoryStore):
    PARAM: ClassVar[str] = "?"
    BEGIN: ClassVar[str] = "BEGIN IMMEDIATE"
    ERRORS: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)
    ID_TYPE: ClassVar[str] = "TEXT"  # SQLite compares text byte by byte (BINARY) by default

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        if "." in self.table:
            raise InvalidHistoryStore(f"SQLite has no schemas: name the history table without a dot, not {self.table!r}")
        assert self.url.path is not None
        self.path = self.url.path

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit (isolation_level None): transactions are the explicit BEGIN/COMMIT
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            mode = self._wal(conn)
            if mode != "wal":
                raise sqlite3.OperationalError(f"{self.path} cannot use WAL mode (journal_mode is {mode})")
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _wal(conn: sqlite3.Connection) -> str:
        """Switch to WAL: it needs the file to itself, and SQLite may refuse at once
        ("database is locked") instead of waiting when another process is creating or
        switching the same file, so try again until BUSY_TIMEOUT."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
