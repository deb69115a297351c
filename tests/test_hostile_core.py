"""Hostile peers against the pure core (issue 10): strings that cannot be re-encoded,
look-alike and bidi names, ids from the future, phantom devices. No network.

Oracles are independent of the code under test: UTF-8 encodability is asked of Python's
codec, look-alikes are compared as literals, time comes from a fake clock."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.display_names import clean_display_name, name_key
from components.errors import InvalidPayload
from components.events import ChatReceived, ReceiptMoved
from components.message_ids import MAX_CLOCK_SKEW, MessageIds, id_time
from components.org_state import OrgState
from components.payloads import decode, encode
from components.tab_fanout import Fanout, Tab
from components.tab_history import HistorySource
from components.tab_protocol import ROOM_PARTS, TabEncoder
from components.tab_views import Watch
from components.tokens import Claims
from components.topics import TopicScheme
from helpers import FakeLoop

ORG, ROOM = "acme", "lobby"
NOW = 1_800_000_000.0


def org_state(**options) -> OrgState:
    return OrgState(scheme=TopicScheme(), org=ORG, rooms=[ROOM], **options)


def encodable(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- strings that cannot travel again ---------------------------------------------------------

def test_a_lone_surrogate_in_any_string_makes_a_payload_invalid() -> None:
    surrogate = '"Eve\\ud800"'
    cases = {
        "presence": f'{{"status":"online","epoch":1,"name":{surrogate}}}',
        "chat": f'{{"id":"01M8NDRW12Y0E4Z042VMTMCG62","text":{surrogate}}}',
        "reaction": f'{{"emoji":{surrogate}}}',
        "cursor": f'{{"x":0.5,"y":0.5,{surrogate}:1}}',  # an unknown key is a string too
        "tab-message": f'{{"t":"chat","room":"lobby","text":{surrogate}}}',
    }
    for kind, text in cases.items():
        with pytest.raises(InvalidPayload, match="surrogate"):
            decode(kind, text.encode())  # type: ignore[arg-type]
    # an escaped backslash followed by "ud800" is six ordinary characters
    assert decode("presence", b'{"status":"online","name":"Eve\\\\ud800"}')["name"] == "Eve\\ud800"
    # a surrogate pair is one character outside the BMP, which is fine
    assert decode("presence", b'{"status":"online","name":"\\ud83d\\ude00"}')["name"] == "\U0001F600"


def test_the_kit_refuses_to_publish_a_lone_surrogate() -> None:
    with pytest.raises(InvalidPayload):
        encode("chat", {"id": "01M8NDRW12Y0E4Z042VMTMCG62", "text": "x\ud800y"})


any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\ud800", "a\udfffb", "Bob\u202e nimda", "Vic\u200btim", "\u2066x\u2069", "x" * 300, "\u3164", ""]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["presence", "chat", "reaction", "typing", "cursor"]), any_text), min_size=1, max_size=6))
def test_whatever_strings_arrive_every_frame_a_tab_is_sent_stays_encodable(messages) -> None:
    """Any string in any field of any topic: every frame a tab would be sent is UTF-8."""
    state = org_state()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    timers = FakeLoop()
    try:
        history = HistorySource(  # no store: what the state holds, read at once
            read=lambda room, **page: [], recent=lambda room: state.rooms[room].snapshot().messages, submit=lambda work, done: done(work(), None)
        )
        fanout = Fanout(encoder=TabEncoder(), room_state=lambda room: state.rooms[room].snapshot(), history=history, count=lambda why: None, timers=timers)
        claims = Claims(user="viewer", name="viewer", org=ORG, expires=0, issued=0, nonce="n", rooms=frozenset({ROOM}))
        watch = Watch(frozenset({(None, 50), (ROOM, 50)}), {ROOM: frozenset(ROOM_PARTS)})
        tab = Tab(websocket=None, claims=claims, device_id="d", rooms=claims.rooms, watch=watch, asked=watch)  # type: ignore[arg-type]
        fanout.add(tab)
        for kind, text in messages:
            doc, topic = {
                "presence": ({"status": "online", "epoch": 1, "name": text, "avatar": text}, f"presence/{ORG}/u1/d1"),
                "chat": ({"id": MessageIds(wall=lambda: NOW).next(), "text": text or "x", "name": text}, f"chat/{ORG}/{ROOM}/u1"),
                "reaction": ({"emoji": text[:16] or "x"}, f"reactions/{ORG}/{ROOM}/u1"),
                "typing": ({"typing": True, text: text}, f"typing/{ORG}/{ROOM}/u1/d1"),
                "cursor": ({"x": 0.5, "y": 0.5, "region": text}, f"cursor/{ORG}/{ROOM}/u1/d1"),
            }[kind]
            raw = json.dumps(doc, ensure_ascii=True).encode()  # \\u escapes, as a hostile client would
            events = state.receive(topic, raw, retained=False, wall=NOW, mono=0.0)
            for event in events:
                fanout.handle(event)
            if not encodable(doc):
                assert events == [], "a payload with a lone surrogate was applied"
        fanout.presence_tick()
        timers.advance(1)
        fanout.handle(state.snapshot(complete=True))
        while not tab.queue.empty():
            tab.queue.get_nowait().encode("utf-8")  # never raises
    finally:
        loop.close()


# -- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("Bob\u202e nimda", "Bob nimda"),                  # a right-to-left override would show "Bobadmin"
    ("Vic\u200btim", "Victim"),                          # zero-width space: no second "Victim"
    ("Vic\u200dtim", "Victim"),                          # a zero-width joiner between letters goes too
    ("\u2067evil\u2069", "evil"),                        # isolates
    ("Ana\u00ad", "Ana"),                                # soft hyphen
    ("\ufeffAna", "Ana"),
    ("  Ana \t\n Lopez ", "Ana Lopez"),
    ("\u3164", None),                                    # an invisible filler alone is no name
    ("", None),
    ("👩\u200d💻 dev", "👩\u200d💻 dev"),                 # an emoji sequence keeps its joiner
    ("Zoë", "Zoë"),
    ("عربي", "عربي"),
])
def test_display_names_lose_bidi_controls_and_invisible_characters(raw: str, shown: str | None) -> None:
    assert clean_display_name(raw) == shown


def test_long_names_and_mark_towers_are_cut() -> None:
    assert len(clean_display_name("x" * 1000) or "") == 200
    assert clean_display_name("Z" + "\u0301" * 50) == "Ź" + "\u0301" * 3  # NFC makes the first mark part of Ź


def test_look_alike_names_share_a_key() -> None:
    assert name_key("Ana") == name_key("ana") == name_key("ＡＮＡ") == name_key("A na")
    assert name_key("Ana") != name_key("Anna")


def test_names_from_the_wire_are_cleaned_where_they_enter() -> None:
    state = org_state()
    state.receive(f"presence/{ORG}/eve/d1", json.dumps({"status": "online", "name": "Bob\u202e nimda"}).encode(), retained=False, wall=NOW, mono=0)
    assert state.users()["eve"].name == "Bob nimda"
    message_id = MessageIds(wall=lambda: NOW).next()
    [event] = state.receive(f"chat/{ORG}/{ROOM}/eve", json.dumps({"id": message_id, "text": "hi", "name": "Vic\u200btim"}).encode(), retained=False, wall=NOW, mono=0)
    assert isinstance(event, ChatReceived) and event.message.name == "Victim"


# -- ids from the future -------------------------------------------------------------------

def test_a_chat_id_from_the_future_is_refused_and_counted() -> None:
    state = org_state()
    pinned = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    assert state.receive(f"chat/{ORG}/{ROOM}/eve", json.dumps({"id": pinned, "text": "pinned"}).encode(), retained=False, wall=NOW, mono=0) == []
    ahead = MessageIds(wall=lambda: NOW + MAX_CLOCK_SKEW + 5).next()
    assert state.receive(f"chat/{ORG}/{ROOM}/eve", json.dumps({"id": ahead, "text": "early"}).encode(), retained=False, wall=NOW, mono=0) == []
    skewed = MessageIds(wall=lambda: NOW + MAX_CLOCK_SKEW - 5).next()  # a clock a little ahead is fine
    assert len(state.receive(f"chat/{ORG}/{ROOM}/ben", json.dumps({"id": skewed, "text": "ok"}).encode(), retained=False, wall=NOW, mono=0)) == 1
    assert state.counters.refused == 2
    assert [m.text for m in state.room_snapshots()[ROOM].messages] == ["ok"]


def test_a_receipt_from_the_future_is_refused_so_markers_cannot_be_frozen() -> None:
    state = org_state()
    assert state.receive(f"receipts/{ORG}/{ROOM}/eve", json.dumps({"up_to": "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}).encode(), retained=True, wall=NOW, mono=0) == []
    real = MessageIds(wall=lambda: NOW).next()
    assert state.receive(f"receipts/{ORG}/{ROOM}/eve", json.dumps({"up_to": real}).encode(), retained=True, wall=NOW, mono=0) == [ReceiptMoved(ROOM, "eve", real)]
    assert state.counters.refused == 1


def test_id_time_reads_the_ulid_clock() -> None:
    now = time.time()
    assert abs(id_time(MessageIds().next()) - now) < 1


# -- phantom devices -----------------------------------------------------------------------

def test_cursors_expire_on_the_server_and_are_capped_per_user() -> None:
    state = org_state(cursor_ttl=5.0, per_user=3)
    for i in range(1000):  # one account inventing device ids
        state.receive(f"cursor/{ORG}/{ROOM}/eve/d{i}", b'{"x":0.5,"y":0.5}', retained=False, wall=NOW, mono=i / 1000)
    state.receive(f"cursor/{ORG}/{ROOM}/ana/tab", b'{"x":0.1,"y":0.1,"region":"canvas"}', retained=False, wall=NOW, mono=3.0)
    cursors = state.room_snapshots()[ROOM].cursors
    assert sorted(cursors) == [("ana", "tab"), ("eve", "d997"), ("eve", "d998"), ("eve", "d999")]
    assert cursors[("ana", "tab")].region == "canvas"
    assert state.next_expiry() == pytest.approx(0.997 + 5.0)  # eve's oldest kept cursor
    state.expire(mono=6.0)  # eve's stopped moving at ~1 s, ana's at 3 s
    assert sorted(state.room_snapshots()[ROOM].cursors) == [("ana", "tab")]
    state.expire(mono=8.0)
    assert state.room_snapshots()[ROOM].cursors == {}
    assert state.next_expiry() is None


def test_typing_is_capped_per_user() -> None:
    state = org_state(per_user=2)
    for i in range(50):
        state.receive(f"typing/{ORG}/{ROOM}/eve/d{i}", b'{"typing":true,"ttl":60000}', retained=False, wall=NOW, mono=0)
    assert state.rooms[ROOM].typists() == ("eve",)
    assert len(state.rooms[ROOM]._typing) == 2


def test_a_users_surplus_offline_device_topics_are_listed_but_not_their_last_seen() -> None:
    state = org_state()

    def put(user: str, device: str, status: str, since: float) -> None:
        doc = {"status": status, "epoch": 1, "since": since}
        state.receive(f"presence/{ORG}/{user}/{device}", json.dumps(doc).encode(), retained=True, wall=NOW, mono=0)

    for i in range(5):
        put("eve", f"t{i}", "offline", NOW - 100 + i)  # five closed tabs
    put("ana", "old", "offline", NOW - 100)
    put("ana", "now", "online", NOW - 100)  # live: her offline topics say nothing
    put("ben", "only", "offline", NOW - 100)  # one topic: his last seen
    surplus = {(t.user, t.device) for t in state.surplus_device_topics(older_than=NOW - 10)}
    assert surplus == {("eve", "t0"), ("eve", "t1"), ("eve", "t2"), ("eve", "t3"), ("ana", "old")}
    assert state.surplus_device_topics(older_than=NOW - 200) == [], "a recent departure is kept a while"


# -- admission ----------------------------------------------------------------------------------

def test_origins_are_the_pages_own_host_or_listed() -> None:
    from components.tab_admission import origin_allowed

    assert origin_allowed("http://127.0.0.1:8501", host="127.0.0.1:8501", allowed=frozenset())
    assert origin_allowed("https://App.Example.com", host="app.example.com", allowed=frozenset())
    assert not origin_allowed("http://evil.example", host="app.example.com", allowed=frozenset())
    assert not origin_allowed("http://app.example.com.evil.example", host="app.example.com", allowed=frozenset())
    assert not origin_allowed("null", host="app.example.com", allowed=frozenset())  # a sandboxed iframe or a file
    assert origin_allowed("https://proxy.example", host="10.0.0.5:8501", allowed=frozenset({"https://proxy.example"}))
    assert origin_allowed(None, host="anything", allowed=frozenset())  # not a browser: the token decides


def test_a_page_token_opens_one_device_and_a_fresh_token_only_its_own() -> None:
    from components.tab_admission import TokenBindings
    from components.tokens import TokenSigner

    now = [1000.0]
    signer = TokenSigner(b"k" * 32, ttl=600, wall=lambda: now[0])
    page = signer.verify(signer.sign(user="ana", name="Ana\u202e", org="acme"))
    assert page.name == "Ana" and page.device is None and page.issued == 1000.0
    bindings = TokenBindings()
    assert bindings.allows(page, "d1", now=now[0])
    bindings.bind(page, "d1", now=now[0])
    assert bindings.allows(page, "d1", now=now[0]) and not bindings.allows(page, "d2", now=now[0])
    now[0] = 1300.0
    fresh = signer.verify(signer.refresh(page, device="d1", rooms=["lobby"]))
    assert (fresh.device, fresh.issued, fresh.nonce, fresh.rooms) == ("d1", 1000.0, page.nonce, frozenset({"lobby"}))
    assert bindings.allows(fresh, "d1", now=now[0]) and not bindings.allows(fresh, "d2", now=now[0])
    assert bindings.allows(page, "d2", now=1601.0), "an expired page token's binding lapses with it"


def test_a_short_token_key_is_one_line_without_the_key(monkeypatch) -> None:
    from components.errors import TokenKeyError
    from components.tokens import process_signer

    monkeypatch.setenv("PRESENCE_TOKEN_KEY", "hunter2")
    process_signer.cache_clear()
    try:
        with pytest.raises(TokenKeyError) as raised:
            process_signer()
        assert str(raised.value) == "PRESENCE_TOKEN_KEY is too short: the token key must be at least 16 bytes long, not 7; use a long random string"
    finally:
        process_signer.cache_clear()


def test_a_broker_url_never_shows_its_password() -> None:
    from components.broker import BrokerSettings
    from components.errors import InvalidBrokerUrl

    for url in ("mqtt://ana:hunter2@host:99999", "mqtt://ana:hunter2@host/path", "http://ana:hunter2@host", "mqtt://ana:hun@ter2@host:0"):
        with pytest.raises(InvalidBrokerUrl) as raised:
            BrokerSettings.from_url(url)
        assert "hunter2" not in str(raised.value) and "ter2" not in str(raised.value)
    with pytest.raises(InvalidBrokerUrl, match=r"bad broker URL 'mqtt://\*\*\*@host:99999'"):
        BrokerSettings.from_url("mqtt://ana:hunter2@host:99999")
