"""The chat history store against real databases: SQLite files in tmp_path and a schema
of the test's own in the PostgreSQL on 127.0.0.1:5432 (`history_place`, both backends
for every behaviour). What is stored is read back with the bare driver
(HistoryPlace.rows), never only through the store under test; time is a fake clock."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

import pytest

from components import ChatMessage, HistoryUnavailable, InvalidHistoryStore, InvalidId, InvalidMessageId, open_history_store
from components.history_url import HistoryUrl, redact
from components.history_writer import QUEUE_LIMIT, HistoryWriter
from components.message_ids import MAX_CLOCK_SKEW, MessageIds

from helpers import HistoryPlace, end_process, python_child, wait_for

ORG = "acme"
T0 = 1_700_000_000.0


class Clock:
    """A fake wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def chat(message_id: str, text: str = "hi", *, room: str = "lobby", user: str = "ana") -> ChatMessage:
    return ChatMessage(id=message_id, room=room, user=user, text=text, name=None, at=None)


def messages_at(clock: Clock, count: int, *, step: float = 0.001, room: str = "lobby") -> list[ChatMessage]:
    """`count` messages made `step` seconds apart from clock.now on (the clock moves)."""
    ids = MessageIds(wall=clock)
    made = []
    for i in range(count):
        made.append(chat(ids.next(), f"m{i}", room=room))
        clock.now += step
    return made


# -- the store --------------------------------------------------------------------------------


def test_insert_is_idempotent_on_the_message_id(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock)
    first, second = messages_at(clock, 2)
    try:
        assert store.add(ORG, [first]) == 1
        assert store.add(ORG, [first, first, second]) == 1
        assert store.add_one(ORG, ChatMessage(first.id, "lobby", "eve", "forged", None, None)) is False
        assert store.add(ORG, [chat(first.id, room="kitchen")]) == 1  # a room of its own
        assert store.add("other", [first]) == 1  # an org of its own
    finally:
        store.close()
    assert history_place.rows() == [  # the first write wins
        (ORG, "kitchen", first.id, "ana", "hi"),
        (ORG, "lobby", first.id, "ana", "m0"),
        (ORG, "lobby", second.id, "ana", "m1"),
        ("other", "lobby", first.id, "ana", "m0"),
    ]


def test_paging_gives_each_message_once_in_order_while_new_ones_arrive(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock)
    try:
        old = messages_at(clock, 1000)
        for start in range(0, 1000, 250):
            store.add(ORG, old[start:start + 250])
        seen: list[ChatMessage] = []
        page = store.page(ORG, "lobby", limit=37)
        while page:
            seen = page + seen
            store.add(ORG, messages_at(clock, 3) + messages_at(clock, 2, room="kitchen"))  # arrive between pages
            page = store.page(ORG, "lobby", before=page[0].id, limit=37)
        assert [m.id for m in seen] == [m.id for m in old]
        assert [m.text for m in seen] == [f"m{i}" for i in range(1000)]
        newest = store.page(ORG, "lobby", limit=5)
        assert [m.id for m in newest] == sorted(m.id for m in newest) and newest[-1].id > old[-1].id
    finally:
        store.close()


def test_retention_hides_then_prunes_what_is_older_than_keep(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock, keep=50)
    try:
        made = messages_at(clock, 100, step=0.5)  # two a second from T0 to T0 + 49.5
        assert store.add(ORG, made) == 100  # at T0 + 50 none is older than keep
        clock.now = T0 + 75.0  # the first 50 are now
        shown = store.page(ORG, "lobby", limit=500)
        assert [m.id for m in shown] == [m.id for m in made[50:]]  # never an expired row, pruned or not
        assert len(history_place.rows()) == 100
        assert store.prune() == 50
        assert history_place.ids() == [m.id for m in made[50:]]
        assert store.add(ORG, [made[0]]) == 0  # an expired message is not written again
        clock.now = T0 + 1000.0
        assert store.page(ORG, "lobby", limit=500) == [] and store.prune() == 50
        assert history_place.rows() == []
    finally:
        store.close()


def test_one_message_is_found_by_id_in_its_own_room_only(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock, keep=60)
    first, second = messages_at(clock, 2)
    unknown = MessageIds(wall=clock).next()
    try:
        store.add(ORG, [first, second])
        assert store.message(ORG, "lobby", second.id) == second
        assert store.message(ORG, "kitchen", second.id) is None  # a receipt in another room knows nothing of it
        assert store.message("other", "lobby", second.id) is None
        assert store.message(ORG, "lobby", unknown) is None
        with pytest.raises(InvalidMessageId):
            store.message(ORG, "lobby", "7ZZZ")
        clock.now += 61
        assert store.message(ORG, "lobby", first.id) is None  # expired: as if never stored
    finally:
        store.close()


BAD_IDS = [
    "01hzzzzzzzzzzzzzzzzzzzzzzz",  # lower case
    "01HZZZZZZZZZZZZZZZZZZZZZZ",  # 25 characters
    "01HZZZZZZZZZZZZZZZZZZZZZZU",  # U is not Crockford base32
    "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # does not fit 128 bits
    "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # the year 10889: pinned below every real message
]


def test_hostile_rows_are_refused_and_cost_only_themselves(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock)
    ids = MessageIds(wall=clock)
    good = [chat(ids.next(), f"ok{i}") for i in range(3)]
    ahead = MessageIds(wall=lambda: T0 + MAX_CLOCK_SKEW + 5).next()
    bad = [chat(i) for i in BAD_IDS + [ahead]] + [
        chat(ids.next(), "x\ud800y"),
        chat(ids.next(), "nul\0"),
        chat(ids.next(), ""),
        chat(ids.next(), "x" * 4001),
        chat(ids.next(), room="a/b"),
        chat(ids.next(), user="#"),
        ChatMessage(ids.next(), "lobby", "ana", "hi", "Eve\ud800", None),
    ]
    try:
        assert store.add(ORG, [good[0], *bad[:6], good[1], *bad[6:], good[2]]) == 3
        assert store.refused == len(bad)
        for message in bad:
            with pytest.raises(ValueError):
                store.add_one(ORG, message)
    finally:
        store.close()
    assert history_place.ids() == [m.id for m in good]


def test_page_requests_are_checked(tmp_path: Path) -> None:
    store = HistoryPlace.sqlite(tmp_path).store()
    try:
        for bad in BAD_IDS[:4]:
            with pytest.raises(InvalidMessageId):
                store.page(ORG, "lobby", before=bad)
        for limit in (0, 501, True, 2.0):
            with pytest.raises(ValueError, match="limit"):
                store.page(ORG, "lobby", limit=limit)  # type: ignore[arg-type]
        with pytest.raises(InvalidId):
            store.page(ORG, "#")
        assert store.page(ORG, "lobby", before="7ZZZZZZZZZZZZZZZZZZZZZZZZZ") == []  # far ahead is a fine cursor
    finally:
        store.close()


# -- URLs and tables ----------------------------------------------------------------------------


def test_history_urls_are_parsed_and_never_shown_with_their_password(tmp_path: Path) -> None:
    assert HistoryUrl.parse("sqlite:///data/h.sqlite3", base_dir=tmp_path).path == tmp_path / "data" / "h.sqlite3"
    assert HistoryUrl.parse("sqlite:////var/h.sqlite3", base_dir=tmp_path).path == Path("/var/h.sqlite3")
    assert HistoryUrl.parse("postgres://db/chat?sslmode=require").backend == "postgresql"
    url = HistoryUrl.parse("postgresql://app:hun%40ter2@db:5432/chat?password=hunter3")
    assert "hun" not in url.redacted and "hunter3" not in url.redacted and "app:***@db:5432" in url.redacted
    assert "hunter2" not in repr(url) and url.scrub("auth failed: hun@ter2 / hun%40ter2") == "auth failed: *** / ***"
    for bad in ["mysql://app:hunter2@db/chat", "sqlite:///", "sqlite:///a.db?mode=ro", "sqlite:///:memory:", "postgresql://app:hunter2@[::1/db", "http://x"]:
        with pytest.raises(InvalidHistoryStore) as caught:
            HistoryUrl.parse(bad)
        assert "hunter2" not in str(caught.value)
    assert redact("postgresql://u:p@ss@h1,h2/db") == "postgresql://u:***@h1,h2/db"


def test_tables_are_plain_names_and_sqlite_has_no_schemas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    for bad in ["Chat", "chat; drop table x", "a.b.c", "", "1chat"]:
        with pytest.raises(InvalidHistoryStore):
            open_history_store(url, table=bad)
    with pytest.raises(InvalidHistoryStore, match="no schemas"):
        open_history_store(url, table="s.chat")
    with pytest.raises(InvalidHistoryStore):
        open_history_store(url, keep=0)


# -- bad states ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_unreachable_postgres_fails_fast_with_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    from components.embedded_broker import free_port

    store = open_history_store(f"postgresql://app:hunter2@127.0.0.1:{free_port()}/test")
    caplog.set_level(logging.DEBUG, logger="components")
    try:
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(HistoryUnavailable) as caught:
                store.add_one(ORG, chat(MessageIds().next()))
            assert time.monotonic() - start < 2.0
            assert "hunter2" not in str(caught.value) and "app:***@127.0.0.1" in str(caught.value)
        with pytest.raises(HistoryUnavailable):
            store.page(ORG, "lobby")
        assert not store.available and "refused" in store.last_error.lower()
    finally:
        store.close()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    text = lines[0].getMessage()
    assert "chat history unavailable" in text and "presence keeps working" in text and "\n" not in text
    assert "hunter2" not in text and lines[0].exc_info is None


def test_sqlite_that_cannot_open_is_unavailable_then_retried_with_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    mono = Clock(0.0)
    store = open_history_store(f"sqlite:///{blocker / 'h.sqlite3'}", monotonic=mono)
    caplog.set_level(logging.WARNING, logger="components")
    try:
        assert store.connect() is False and store.retry_in() > 0
        blocker.unlink()
        assert store.connect() is False  # the backoff says not yet: no new attempt
        mono.now += store.retry_in()
        assert store.connect() is True and store.available
        assert store.add_one(ORG, chat(MessageIds().next()))
    finally:
        store.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "unavailable" in messages[0] and "reachable again" in messages[1]


# -- the writer thread ------------------------------------------------------------------------------


def test_writer_waits_out_an_unavailable_store_then_writes_everything(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    place = HistoryPlace(f"sqlite:///{blocker / 'h.sqlite3'}", "presence_chat")
    writer = HistoryWriter(place.store(), org=ORG).start()
    made = messages_at(Clock(time.time()), 50)
    try:
        for message in made:
            writer.record(message)
        assert wait_for(lambda: writer.stats().last_error != "", timeout=5)
        assert not writer.stats().available
        blocker.unlink()
        assert wait_for(lambda: writer.stats().stored == 50, timeout=10), writer.stats()
    finally:
        writer.close()
        writer.store.close()
    assert place.ids() == [m.id for m in made]
    assert writer.stats().dropped == 0


def test_writer_prunes_on_a_schedule(history_place: HistoryPlace) -> None:
    clock = Clock()
    store = history_place.store(wall=clock, keep=60)
    store.add(ORG, messages_at(clock, 10, step=1.0))  # from T0 to T0 + 9
    writer = HistoryWriter(store, org=ORG, prune_every=0.05).start()
    try:
        clock.now = T0 + 65.0  # the first five are now older than keep
        assert wait_for(lambda: len(history_place.rows()) == 5, timeout=5)
        clock.now = T0 + 68.0  # and three more: pruned again, on the schedule
        assert wait_for(lambda: len(history_place.rows()) == 2, timeout=5)
        assert writer.pruned == 8
    finally:
        writer.close()
        store.close()


def test_writer_close_writes_what_is_queued(history_place: HistoryPlace) -> None:
    writer = HistoryWriter(history_place.store(), org=ORG).start()
    made = messages_at(Clock(time.time()), 300)
    for message in made:
        writer.record(message)
    writer.close(timeout=10)
    writer.store.close()
    assert history_place.ids() == [m.id for m in made]


def test_writer_queue_is_bounded_and_record_never_blocks(tmp_path: Path) -> None:
    writer = HistoryWriter(HistoryPlace.sqlite(tmp_path).store(), org=ORG)  # not started: nothing drains
    message = chat(MessageIds().next())
    start = time.monotonic()
    for _ in range(QUEUE_LIMIT + 25):
        writer.record(message)
    assert time.monotonic() - start < 2.0
    assert (writer.stats().queued, writer.stats().dropped) == (QUEUE_LIMIT, 25)
    writer.store.close()


# -- several processes, one SQLite file ----------------------------------------------------------

WRITER_CHILD = r"""
import json, random, sys
from components import ChatMessage, open_history_store, HistoryUnavailable
url, me = sys.argv[1], sys.argv[2]
ids = json.loads(sys.stdin.readline())
store = open_history_store(url)
random.seed(me)
failures, at = 0, 0
while at < len(ids):
    size = random.randint(1, 20)
    batch = [ChatMessage(i, "lobby", me, "from " + me, None, None) for i in ids[at:at + size]]
    try:
        store.add("acme", batch)
        at += size
    except HistoryUnavailable as exc:
        failures += 1
        print(exc, file=sys.stderr)
        if failures > 100:
            raise
print(json.dumps({"failures": failures, "stored": store.stored, "refused": store.refused}))
store.close()
"""


def test_two_processes_share_one_sqlite_file_without_lock_failures(tmp_path: Path) -> None:
    place = HistoryPlace.sqlite(tmp_path)
    clock = Clock(time.time())
    ids = [m.id for m in messages_at(clock, 3000)]
    shares = {"p1": ids[:2000], "p2": ids[1000:]}  # the middle thousand is written by both
    children = {name: python_child("-c", WRITER_CHILD, place.url, name, stdin=subprocess.PIPE) for name in shares}
    try:
        for name, child in children.items():  # both start at once on a file that does not exist yet
            child.stdin.write(json.dumps(shares[name]) + "\n")
            child.stdin.flush()
        reports = {}
        for name, child in children.items():
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            assert "locked" not in err, err
            reports[name] = json.loads(out)
    finally:
        for child in children.values():
            end_process(child)
    assert all(r["failures"] == 0 and r["refused"] == 0 for r in reports.values()), reports
    assert reports["p1"]["stored"] + reports["p2"]["stored"] == 3000  # every id once, whoever won
    assert place.ids() == ids
    import sqlite3

    with sqlite3.connect(place.url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
