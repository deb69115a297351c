"""The room pieces at the protocol level, against a real Mosquitto over MQTT 5 and
3.1.1: chat both ways, cursors coalesced to at most 20 Hz and never sent to an empty
room, reaction bursts and typing stop."""

from __future__ import annotations

import time

import pytest

from components import ChatReceived, CursorMoved, ReactionReceived

from helpers import Watcher, wait_for

pytestmark = pytest.mark.integration


def collect(session, kind):
    seen: list = []
    session.subscribe(lambda event: seen.append(event) if isinstance(event, kind) else None)
    return seen


def test_chat_is_delivered_both_ways(settings, watcher: Watcher, make_session) -> None:
    messages = collect(watcher.session, ChatReceived)
    session = make_session(observe=False)
    ana, ben = session.open_device(user="ana", device="d1", name="Ana"), session.open_device(user="ben", device="d1")
    assert ana.wait_connected(5) and ben.wait_connected(5)
    first = ana.send_chat("lobby", "hi ben")
    second = ben.send_chat("lobby", "hi ana")
    assert wait_for(lambda: len(messages) == 2, timeout=3)
    # two connections: arrival order is the broker's, the room keeps id (time) order
    assert {(e.message.user, e.message.text, e.message.name) for e in messages} == {("ana", "hi ben", "Ana"), ("ben", "hi ana", None)}
    assert first.id < second.id
    assert [m.id for m in watcher.session.snapshot().rooms["lobby"].messages] == [first.id, second.id]


def test_cursor_moves_are_coalesced_to_20_hz_and_not_sent_to_an_empty_room(settings, make_session) -> None:
    observer = make_session()
    assert observer.wait_synced(5)
    moves = collect(observer, CursorMoved)
    mover_session = make_session(observe=True)
    assert mover_session.wait_synced(5)
    mover = mover_session.open_device(user="mover", device="d1")
    assert mover.wait_connected(5)
    assert wait_for(lambda: "mover" in mover_session.snapshot().users, timeout=3)
    for i in range(50):  # alone in the room: nothing goes out
        mover.move_cursor("lobby", i / 100, 0.5)
    time.sleep(0.3)
    assert mover.cursors_sent == 0 and moves == []
    watcher = mover_session.open_device(user="watcher", device="d1")
    assert wait_for(lambda: "watcher" in mover_session.snapshot().users, timeout=3)
    start = time.monotonic()
    for i in range(200):  # 200 moves as fast as possible, then the last one must arrive
        mover.move_cursor("lobby", i / 200, 0.25)
    assert wait_for(lambda: moves and moves[-1].cursor.x == 199 / 200, timeout=3)
    elapsed = time.monotonic() - start
    assert mover.cursors_sent <= elapsed * 20 + 2, f"{mover.cursors_sent} sends in {elapsed:.2f} s"
    assert len(moves) == mover.cursors_sent
    watcher.close()


def test_reaction_bursts_carry_their_count(settings, watcher: Watcher, make_session) -> None:
    bursts = collect(watcher.session, ReactionReceived)
    device = make_session(observe=False).open_device(user="fan", device="d1")
    assert device.wait_connected(5)
    device.react("lobby", "🎉", count=37)
    assert wait_for(lambda: bursts, timeout=3)
    assert (bursts[0].user, bursts[0].emoji, bursts[0].count) == ("fan", "🎉", 37)


def test_typing_stop_clears_at_once(settings, watcher: Watcher, make_session) -> None:
    device = make_session(observe=False).open_device(user="typist", device="d1")
    assert device.wait_connected(5)
    room = watcher.session.state.rooms["lobby"]
    device.typing("lobby", ttl=30)
    assert wait_for(lambda: room.typists() == ("typist",), timeout=2)
    device.typing("lobby", active=False)
    assert wait_for(lambda: room.typists() == (), timeout=1)
