"""Chat history in a database: the one interface, `HistoryStore`, and what both
backends (history_sqlite.py, history_postgres.py) share.

    store = open_history_store("sqlite:///.presence-kit/history.sqlite3", keep=30 * 86400)
    store.add("acme", [message])               # idempotent on (org, room, id)
    store.add_one("acme", message)             # one message a sender waits on; raises if not stored
    store.page("acme", "lobby", limit=50)      # the latest 50, oldest first
    store.page("acme", "lobby", before=oldest_id_shown, limit=50)   # "load earlier"
    store.message("acme", "lobby", message_id) # one message by id (None: not stored)
    store.prune(); store.close()

Semantics:
- A row is (org, room, id, sender, name, text, at) with primary key (org, room, id);
  inserting an id the room already has changes nothing (the first write wins), so every
  replica can record everything it sees and all of them converge.
- Ids are ULIDs, so id order is time order and a page is a keyset range: `before` is an
  id, and the page holds the `limit` ids just below it. New messages have higher ids,
  so they never shift a page being walked backwards: each message comes exactly once.
- Retention: a row whose id is dated more than `keep` seconds before now is expired.
  Reads never return one (the range starts at floor_id(now - keep)); `prune()` deletes
  them, and the session's history writer calls it on a schedule.
- Rows are checked before they are written; a bad one is refused and counted
  (`refused`), never written and never fatal to the rest of its batch: an id that is not
  a ULID or is dated ahead of now, an org/room/user that is not an id, text that is
  empty, longer than the chat schema allows, or not clean UTF-8 without NUL.
- The connection is opened on first use and again after any failure, with capped
  backoff; until then every call raises HistoryUnavailable at once (the last error in
  its text), so callers never wait on a dead database. Going down is logged once, as one
  line with the password redacted; coming back is logged once too.
- Thread-safe: one connection, one lock; calls from any thread run one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .backoff import Backoff
from .errors import HistoryUnavailable, InvalidHistoryStore
from .events import ChatMessage
from .history_url import HistoryUrl
from .ids import check_id
from .message_ids import check_message_id, floor_id
from .settings import HistorySection

log = logging.getLogger(__name__)

HISTORY_URL_VARIABLE = "PRESENCE_HISTORY_URL"
"""Replaces the app file's `history.url` (a relative SQLite path is then taken from the
working directory)."""
DEFAULT_KEEP = 30 * 86400.0
"""Seconds a message is kept: 30 days (Ably Chat's default)."""
DEFAULT_TABLE = "presence_chat"
TABLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,47}(\.[a-z_][a-z0-9_]{0,47})?$")
"""A table name, optionally `schema.table` (PostgreSQL): lower case, so no quoting."""
MAX_PAGE = 500
"""Most messages one read returns."""
MAX_TEXT = 4000
"""The chat schema's maxLength of `text`."""
ABOVE_EVERY_ID = "8"
"""Sorts after every valid id (their first character is 0-7): `before` of the latest page."""

COLUMNS = "id, room, sender, text, name, at"
"""What a read selects, in the order _from_row takes it."""

T = TypeVar("T")


def _from_row(row: tuple) -> ChatMessage:
    message_id, room, user, text, name, at = row
    return ChatMessage(id=message_id, room=room, user=user, text=text, name=name, at=at)


def check_page(room: str, *, before: str | None, limit: int) -> None:
    """Refuse a page request that names a bad room, a `before` that is not a message
    id, or a limit outside 1-MAX_PAGE (InvalidId, InvalidMessageId, ValueError)."""
    check_id(room, kind="room")
    if before is not None:
        check_message_id(before)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE}, not {limit!r}")


class HistoryStore:
    """The interface, and the SQL both backends speak (DB-API 2, `ON CONFLICT DO NOTHING`).

    A backend sets PARAM (its placeholder), BEGIN (how a write transaction starts),
    ERRORS (what its driver raises), ID_TYPE (a text type compared byte by byte, so id
    order is ULID order whatever the database's collation) and implements `_open()` (a
    new autocommit connection) and, where needed, `_before_schema()`."""

    PARAM: ClassVar[str] = "?"
    BEGIN: ClassVar[str] = "BEGIN"
    ERRORS: ClassVar[tuple[type[Exception], ...]] = ()
    ID_TYPE: ClassVar[str] = "TEXT"

    def __init__(
        self,
        url: HistoryUrl,
        *,
        table: str = DEFAULT_TABLE,
        keep: float = DEFAULT_KEEP,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(table, str) or not TABLE_PATTERN.fullmatch(table):
            raise InvalidHistoryStore(f"invalid history table {table!r}: lower-case letters, digits and _, optionally schema.table")
        if not keep > 0:
            raise InvalidHistoryStore(f"history keep must be > 0 seconds, not {keep}")
        self.url = url
        self.table = table
        self.keep = float(keep)
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._conn: Any = None
        self._backoff = Backoff(first=0.5, cap=30.0)
        self._retry_at = float("-inf")
        self._down = False
        self.last_error = ""
        self.stored = 0
        self.refused = 0

    # -- the interface -----------------------------------------------------------------------
    def add(self, org: str, messages: Iterable[ChatMessage]) -> int:
        """Insert the messages of `org` the store does not have yet; return how many were
        new. Bad rows are refused and counted, expired ones skipped, and the rest written.
        Raises HistoryUnavailable when the write did not happen (nothing of it is stored)."""
        now = self._wall()
        floor = floor_id(now - self.keep)
        rows = []
        for message in messages:
            try:
                row = self._row(org, message, now=now)
            except ValueError as exc:  # InvalidId, InvalidMessageId and UnicodeEncodeError are ValueErrors
                self.refused += 1
                log.debug("refused a chat row for the history: %s", exc)
                continue
            if message.id >= floor:
                rows.append(row)
        return self._insert(rows)

    def add_one(self, org: str, message: ChatMessage) -> bool:
        """Store one message a sender waits on (write before publish); True when it was
        new. Raises what is wrong with it (InvalidId, InvalidMessageId, ValueError) or
        HistoryUnavailable: either way it is not stored."""
        now = self._wall()
        row = self._row(org, message, now=now)
        if message.id < floor_id(now - self.keep):
            raise ValueError(f"message {message.id} is older than the history keeps ({self.keep:.0f} s)")
        return self._insert([row]) == 1

    def _insert(self, rows: list[tuple]) -> int:
        if not rows:
            return 0
        sql = self._sql(f"INSERT INTO {self.table} (org, room, id, sender, name, text, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")

        def insert(conn: Any) -> int:
            with self._transaction(conn) as cursor:
                cursor.executemany(sql, rows)
                return max(0, cursor.rowcount)

        added = self._run(insert, doing="write")
        self.stored += added
        return added

    def page(self, org: str, room: str, *, before: str | None = None, limit: int = 50) -> list[ChatMessage]:
        """Up to `limit` unexpired messages of the room with ids below `before` (None: the
        latest), oldest first. Walking back with `before=page[0].id` gives every message
        exactly once, in order."""
        check_id(org, kind="org")
        check_page(room, before=before, limit=limit)
        sql = self._sql(
            f"SELECT {COLUMNS} FROM {self.table} WHERE org = ? AND room = ? AND id >= ? AND id < ? ORDER BY id DESC LIMIT ?"
        )
        params = (org, room, floor_id(self._wall() - self.keep), before or ABOVE_EVERY_ID, limit)

        def select(conn: Any) -> list[ChatMessage]:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            return [_from_row(row) for row in reversed(cursor.fetchall())]

        return self._run(select, doing="read")

    def message(self, org: str, room: str, message_id: str) -> ChatMessage | None:
        """The unexpired message of the room with this id, or None when the store has
        none (a read receipt is accepted only for a message the kit knows)."""
        check_id(org, kind="org")
        check_id(room, kind="room")
        check_message_id(message_id)
        if message_id < floor_id(self._wall() - self.keep):
            return None
        sql = self._sql(f"SELECT {COLUMNS} FROM {self.table} WHERE org = ? AND room = ? AND id = ?")

        def select(conn: Any) -> ChatMessage | None:
            cursor = conn.cursor()
            cursor.execute(sql, (org, room, message_id))
            row = cursor.fetchone()
            return None if row is None else _from_row(row)

        return self._run(select, doing="read")

    def prune(self) -> int:
        """Delete the expired messages; return how many went."""
        sql = self._sql(f"DELETE FROM {self.table} WHERE id < ?")
        floor = floor_id(self._wall() - self.keep)

        def delete(conn: Any) -> int:
            with self._transaction(conn) as cursor:
                cursor.execute(sql, (floor,))
                return max(0, cursor.rowcount)

        return self._run(delete, doing="prune")

    def connect(self) -> bool:
        """Open the connection now if it is closed and the backoff allows; True when open."""
        try:
            self._run(lambda conn: None, doing="connect")
        except HistoryUnavailable:
            return False
        return True

    def retry_in(self) -> float:
        """Seconds until the next connection attempt is allowed (0 when open or due)."""
        return 0.0 if self._conn is not None else max(0.0, self._retry_at - self._monotonic())

    @property
    def available(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._retry_at = float("inf")  # closed for good
        if conn is not None:
            with contextlib.suppress(*self.ERRORS):
                conn.close()

    # -- rows ------------------------------------------------------------------------------
    def _row(self, org: str, message: ChatMessage, *, now: float) -> tuple:
        """The row of a message, or InvalidId / InvalidMessageId / ValueError saying why not."""
        check_message_id(message.id, now=now)
        check_id(org, kind="org")
        check_id(message.room, kind="room")
        check_id(message.user, kind="user")
        if not isinstance(message.text, str) or not 1 <= len(message.text) <= MAX_TEXT:
            raise ValueError(f"message {message.id}: text must be 1-{MAX_TEXT} characters")
        for value in (message.text, message.name or ""):
            if not isinstance(value, str) or "\0" in value:
                raise ValueError(f"message {message.id}: text and name must be strings without NUL")
            value.encode("utf-8")  # a lone surrogate can be neither stored nor sent again
        at = None if message.at is None else float(message.at)
        return (org, message.room, message.id, message.user, message.name, message.text, at)

    # -- the connection ------------------------------------------------------------------------
    def _run(self, work: Callable[[Any], T], *, doing: str) -> T:
        with self._lock:
            conn = self._connection()
            try:
                return work(conn)
            except self.ERRORS as exc:
                self._drop(conn)
                raise self._unavailable(exc, doing=doing) from None

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self._monotonic() < self._retry_at:
            raise HistoryUnavailable(f"chat history unavailable at {self.url.redacted}: {self.last_error or 'closed'}")
        conn = None
        try:
            conn = self._open()
            with self._transaction(conn) as cursor:
                self._before_schema(cursor)
                for statement in self._schema_statements():
                    cursor.execute(statement)
        except (*self.ERRORS, OSError) as exc:
            if conn is not None:
                with contextlib.suppress(*self.ERRORS):
                    conn.close()
            self._retry_at = self._monotonic() + self._backoff.next()
            raise self._unavailable(exc, doing="connect") from None
        self._conn = conn
        self._backoff.reset()
        if self._down:
            log.warning("chat history reachable again at %s", self.url.redacted)
        self._down = False
        return conn

    def _drop(self, conn: Any) -> None:
        """After a failure the connection is not trusted: the next call opens a new one."""
        self._conn = None
        self._retry_at = self._monotonic()  # at once the first time; then the backoff
        with contextlib.suppress(*self.ERRORS):
            conn.close()

    def _unavailable(self, exc: BaseException, *, doing: str) -> HistoryUnavailable:
        reason = self.url.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        self.last_error = reason
        if not self._down:
            self._down = True
            log.warning("chat history unavailable at %s: %s (presence keeps working; retrying)", self.url.redacted, reason)
        return HistoryUnavailable(f"chat history {doing} failed at {self.url.redacted}: {reason}")

    @contextlib.contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        cursor = conn.cursor()
        cursor.execute(self.BEGIN)
        try:
            yield cursor
        except BaseException:
            with contextlib.suppress(*self.ERRORS):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _sql(self, text: str) -> str:
        return text.replace("?", self.PARAM)

    def _schema_statements(self) -> list[str]:
        index = self.table.rsplit(".", 1)[-1] + "_by_id"
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            f" org TEXT NOT NULL, room TEXT NOT NULL, id {self.ID_TYPE} NOT NULL,"
            " sender TEXT NOT NULL, name TEXT, text TEXT NOT NULL, at DOUBLE PRECISION,"
            " PRIMARY KEY (org, room, id))",
            # prune deletes by id alone, across rooms
            f"CREATE INDEX IF NOT EXISTS {index} ON {self.table} (id)",
        ]

    # -- backend hooks --------------------------------------------------------------------------
    def _open(self) -> Any:
        raise NotImplementedError

    def _before_schema(self, cursor: Any) -> None:
        """Run inside the schema transaction before the CREATE statements."""


def open_history_store(
    url: str,
    *,
    table: str = DEFAULT_TABLE,
    keep: float = DEFAULT_KEEP,
    base_dir: Path | None = None,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> HistoryStore:
    """The store a URL names (sqlite:///PATH or postgresql://...). Nothing is connected
    yet: the first use connects. Raises InvalidHistoryStore for a URL or table it cannot
    use, or a PostgreSQL URL without psycopg installed."""
    parsed = HistoryUrl.parse(url, base_dir=base_dir)
    if parsed.backend == "sqlite":
        from .history_sqlite import SqliteHistory

        return SqliteHistory(parsed, table=table, keep=keep, wall=wall, monotonic=monotonic)
    from .history_postgres import PostgresHistory

    return PostgresHistory(parsed, table=table, keep=keep, wall=wall, monotonic=monotonic)


def history_store_for(config: HistorySection, *, environ: Mapping[str, str]) -> HistoryStore:
    """The store an app file's `history` section names, `PRESENCE_HISTORY_URL` winning
    over its url. Not connected yet (see open_history_store)."""
    return open_history_store(environ.get(HISTORY_URL_VARIABLE) or config.url, table=config.table, keep=config.keep)
