"""Chat history in PostgreSQL (psycopg 3, the optional extra
`pip install 'mqtt-presence-components[postgres]'`), for replicas on several machines.

The URL goes to libpq as written. The table may be `schema.table`; the schema and the
table are created when missing, under a transaction-scoped advisory lock, because two
replicas starting at once would otherwise race on CREATE ... IF NOT EXISTS (PostgreSQL
then fails one of them with a unique violation in its catalog).
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

from .errors import InvalidHistoryStore
from .history import HistoryStore

try:
    import psycopg
except ImportError:  # the optional extra is not installed
    psycopg = None  # type: ignore[assignment]

CONNECT_TIMEOUT = 5
"""Seconds a connection attempt may take (libpq's connect_timeout)."""


class PostgresHistory(HistoryStore):
    PARAM: ClassVar[str] = "%s"
    BEGIN: ClassVar[str] = "BEGIN"
    ERRORS: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,) if psycopg is not None else ()
    ID_TYPE: ClassVar[str] = 'TEXT COLLATE "C"'  # a database's locale collation need not sort ULIDs

    def __init__(self, *args: Any, **options: Any) -> None:
        if psycopg is None:
            raise InvalidHistoryStore("a postgresql:// history needs psycopg: pip install 'mqtt-presence-components[postgres]'")
        super().__init__(*args, **options)

    def _open(self) -> Any:
        return psycopg.connect(self.url.url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)

    def _before_schema(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"presence-kit:{self.table}".encode()),))
        if "." in self.table:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {self.table.split('.')[0]}")
