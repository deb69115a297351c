"""Fast unit tests of the pure core: ids, topics, payloads, presence aggregation, room
state and the org state machine, driven with explicit times (no network, no sleeps)."""

from __future__ import annotations

import json

import pytest

import components
from components.broker import BrokerSettings
from components.epochs import EpochClock
from components.capabilities import BrokerCapabilities, Features, ProtocolMemory
from components.errors import InvalidBrokerUrl, InvalidId, InvalidMessageId, InvalidPayload
from components.events import PresenceChanged, ReceiptMoved, TypingChanged, CursorMoved
from components.ids import check_id
from components.message_ids import MAX_CLOCK_SKEW, MessageIds, check_message_id, floor_id, id_time
from components.org_state import OrgState
from components.payloads import decode, encode
from components.presence import DevicePresence, PresenceBook, aggregate
from components.rate_limit import TokenBucket
from components.topics import Topic, TopicScheme


def test_public_api_is_what_all_says() -> None:
    exported = {name for name in dir(components) if not name.startswith("_")}
    modules = {name for name in exported if type(getattr(components, name)).__name__ == "module"}
    assert exported - modules == set(components.__all__)
    for name in components.__all__:
        assert getattr(components, name) is not None


# -- ids and topics -----------------------------------------------------------------------

@pytest.mark.parametrize("good", ["a", "ana", "A-b_c.9", "x" * 64])
def test_good_ids_pass(good: str) -> None:
    assert check_id(good, kind="user") == good


@pytest.mark.parametrize("bad", ["", "#", "+", "a/b", "a b", "x" * 65, "é", None, 5, "a\x00"])
def test_bad_ids_are_refused_naming_kind_and_value(bad: object) -> None:
    with pytest.raises(InvalidId, match=r"invalid room id"):
        check_id(bad, kind="room")


def test_topics_render_and_parse_round_trip() -> None:
    scheme = TopicScheme(prefix="tenant/x")
    topics = [
        Topic("presence", "acme", "ana", device="d1"),
        Topic("presence", "acme", "ana"),
        Topic("typing", "acme", "ana", room="lobby", device="d1"),
        Topic("cursor", "acme", "ana", room="lobby", device="d1"),
        Topic("receipts", "acme", "ana", room="lobby"),
        Topic("chat", "acme", "ana", room="lobby"),
        Topic("reactions", "acme", "ana", room="lobby"),
    ]
    for topic in topics:
        name = scheme.render(topic)
        assert name.startswith("tenant/x/")
        assert scheme.parse(name) == topic


@pytest.mark.parametrize(
    "name",
    ["presence/acme", "presence/acme/a b/d", "chat/acme/lobby/ana/extra", "typing/acme/lobby/ana", "other/acme/x", "presence/acme/ana/d/e", ""],
)
def test_foreign_or_malformed_topics_parse_to_none(name: str) -> None:
    assert TopicScheme().parse(name) is None


def test_topic_refuses_wildcard_user() -> None:
    with pytest.raises(InvalidId):
        Topic("presence", "acme", "#", device="d1")
    with pytest.raises(InvalidId):
        TopicScheme(prefix="a/+")


def test_filters_keep_user_as_a_whole_level() -> None:
    scheme = TopicScheme()
    assert scheme.presence_filters("acme") == ("presence/acme/+/+", "presence/acme/+")
    assert scheme.room_filter("typing", "acme", "lobby") == "typing/acme/lobby/+/+"
    assert scheme.room_filter("chat", "acme", "lobby") == "chat/acme/lobby/+"
    assert scheme.snapshot_filter("presence", "acme") == "presence/acme/#"


# -- payloads ---------------------------------------------------------------------------------

def test_reference_app_payload_is_valid_and_open_schemas_accept_extra_fields() -> None:
    assert decode("presence", b'{"status":"offline"}') == {"status": "offline"}
    assert decode("presence", b'{"status":"online","epoch":5,"custom":{"x":1}}')["custom"] == {"x": 1}


@pytest.mark.parametrize(
    "kind,raw",
    [
        ("presence", b"{"),
        ("presence", b'{"status":"busy"}'),
        ("presence", b'{"status":"online","epoch":1.5}'),
        ("presence", b'{"status":"online","since":NaN}'),
        ("presence", b"\xff"),
        ("presence", b'"online"'),
        ("typing", b'{"typing":true,"ttl":999999}'),
        ("cursor", b'{"x":1.5,"y":0}'),
        ("receipt", b'{"up_to":"not-a-ulid"}'),
        ("chat", b'{"id":"01M8NDRW12Y0E4Z042VMTMCG61","text":""}'),
        ("reaction", b'{"emoji":"x","count":0}'),
        ("presence", b"[" * 5000 + b"]" * 5000),
        ("presence", b" " * 20000),
    ],
)
def test_invalid_payloads_raise_invalid_payload_only(kind, raw) -> None:
    with pytest.raises(InvalidPayload):
        decode(kind, raw)


def test_encode_refuses_what_the_schema_forbids() -> None:
    with pytest.raises(InvalidPayload):
        encode("cursor", {"x": 2, "y": 0})
    assert json.loads(encode("typing", {"typing": True, "ttl": 6000})) == {"typing": True, "ttl": 6000}


# -- epochs and ids -------------------------------------------------------------------------------

def test_epochs_strictly_increase_even_when_the_clock_stands_still_or_goes_back() -> None:
    times = iter([1000.0, 1000.0, 999.0, 1000.5])
    clock = EpochClock(wall=lambda: next(times))
    assert [clock.next() for _ in range(4)] == [1_000_000, 1_000_001, 1_000_002, 1_000_500]


def test_message_ids_are_time_ordered_and_strictly_increasing() -> None:
    ids = MessageIds(wall=lambda: 1_700_000_000.0)
    made = [ids.next() for _ in range(100)]
    assert made == sorted(made) and len(set(made)) == 100
    later = MessageIds(wall=lambda: 1_700_000_001.0).next()
    assert later > made[-1]


def test_message_ids_are_checked_and_floor_ids_bound_a_time() -> None:
    now = 1_700_000_000.0
    made = MessageIds(wall=lambda: now).next()
    assert check_message_id(made, now=now) == made and abs(id_time(made) - now) < 0.001
    assert floor_id(now) <= made < floor_id(now + 0.001)
    ahead = MessageIds(wall=lambda: now + MAX_CLOCK_SKEW + 1).next()
    assert check_message_id(ahead) == ahead  # the format alone is fine
    for bad in [ahead, made.lower(), made[:-1], made[:-1] + "U", "8" + made[1:], None, 7]:
        with pytest.raises(InvalidMessageId):
            check_message_id(bad, now=now)
    assert issubclass(InvalidMessageId, InvalidId) and issubclass(InvalidMessageId, ValueError)


def test_broker_urls() -> None:
    s = BrokerSettings.from_url("mqtts://u%40acme:s3cret@broker.example:8884", protocol="3.1.1")
    assert (s.host, s.port, s.tls, s.username, s.password, s.protocol) == ("broker.example", 8884, True, "u@acme", "s3cret", "3.1.1")
    assert "s3cret" not in repr(s)
    assert BrokerSettings.from_url("mqtt://h").port == 1883
    for bad in ["http://h", "mqtt://", "mqtt://h:0", "mqtt://h/x", "h:1883"]:
        with pytest.raises(InvalidBrokerUrl):
            BrokerSettings.from_url(bad)


def test_a_list_of_broker_urls_is_the_nodes_of_one_cluster_in_order() -> None:
    listed = BrokerSettings.from_url(" mqtt://a:1, mqtts://u:pw@b ,mqtt://u:pw@c:3", keepalive=5)
    assert [e.url for e in listed.endpoints] == ["mqtt://a:1", "mqtts://b:8883", "mqtt://c:3"]
    assert (listed.username, listed.password, listed.keepalive) == ("u", "pw", 5)
    assert BrokerSettings.from_url(["mqtt://a:1", "mqtts://b:8883", "mqtt://c:3"], username="u", password="pw", keepalive=5) == listed
    assert BrokerSettings.from_url(listed.url, username="u", password="pw", keepalive=5) == listed  # url is the list, without secrets
    assert "pw" not in listed.url and "pw" not in repr(listed)
    for bad in ["mqtt://a,", "mqtt://a,mqtt://a", "mqtt://u:x@a,mqtt://u:y@b", ",".join(f"mqtt://h{i}" for i in range(17))]:
        with pytest.raises(InvalidBrokerUrl):
            BrokerSettings.from_url(bad)
    with pytest.raises(InvalidBrokerUrl, match="per node"):
        BrokerSettings.from_url("mqtt://a,mqtt://b", capabilities=BrokerCapabilities(retained_replicated=False))


def test_a_broker_that_refuses_mqtt5_is_spoken_to_in_311_by_every_connection() -> None:
    memory = ProtocolMemory(prefer_v5=True)
    assert memory.v5
    assert memory.refused() and not memory.refused()  # news once
    assert not memory.v5
    # a close before CONNACK may be a node going down: 3.1.1 is tried once, on suspicion
    closing = ProtocolMemory(prefer_v5=True)
    assert closing.closed_before_connack() and not closing.v5
    closing.failed(v5=False)  # 3.1.1 failed too: it was the node
    assert closing.v5
    assert closing.closed_before_connack()
    assert closing.connected(v5=False) and not closing.v5  # 3.1.1 got its CONNACK: confirmed
    assert not closing.closed_before_connack()
    assert not ProtocolMemory(prefer_v5=False).v5


def test_connection_features_follow_the_protocol_and_the_configured_capabilities() -> None:
    default = BrokerCapabilities()
    assert Features.of(default, v5=True) == Features(v5=True, will_delay=True, message_expiry=True, retain_handling=True, qos1_publishes=True, inflight=20)
    assert Features.of(default, v5=False) == Features(v5=False, will_delay=False, message_expiry=False, retain_handling=False, qos1_publishes=True, inflight=20)
    ignoring = BrokerCapabilities(will_delay=False, retain_handling=False, qos1_publishes=False, receive_maximum=50)
    assert Features.of(ignoring, v5=True) == Features(v5=True, will_delay=False, message_expiry=True, retain_handling=False, qos1_publishes=False, inflight=20)
    assert Features.of(default, v5=True, receive_maximum=10).inflight == 10  # a broker's CONNACK limit


# -- presence aggregation -------------------------------------------------------------------------

def dev(device, status, epoch=1, since=100.0, **kw) -> DevicePresence:
    return DevicePresence(device=device, status=status, epoch=epoch, since=since, **kw)


def test_best_status_wins_and_since_follows_it() -> None:
    both = aggregate("ana", {"a": dev("a", "away", since=50), "b": dev("b", "online", since=70), "c": dev("c", "online", since=60)})
    assert (both.status, both.since, both.devices) == ("online", 60, 3)
    away = aggregate("ana", {"a": dev("a", "away", since=50), "b": dev("b", "away", since=80), "c": dev("c", "offline", since=90)})
    assert (away.status, away.since, away.devices) == ("away", 80, 2)
    gone = aggregate("ana", {"a": dev("a", "offline", since=50), "b": dev("b", "offline", since=80)})
    assert (gone.status, gone.since, gone.devices) == ("offline", 80, 0)


def test_lower_epoch_is_stale_and_ignored() -> None:
    book = PresenceBook()
    book.put("ana", dev("d", "online", epoch=10))
    accepted, changed = book.put("ana", dev("d", "offline", epoch=9))
    assert (accepted, changed) == (False, None)
    assert book.user("ana").status == "online" and book.stale_ignored == 1
    accepted, changed = book.put("ana", dev("d", "offline", epoch=10))
    assert accepted and changed.status == "offline"


def test_clearing_the_last_device_removes_the_user() -> None:
    book = PresenceBook()
    book.put("ana", dev("d1", "online"))
    book.put("ana", dev("d2", "online"))
    assert book.clear("ana", "d1") == (False, book.user("ana"))
    assert book.clear("ana", "d2") == (True, None)
    assert book.user("ana") is None


# -- org state --------------------------------------------------------------------------------------

def presence(status, epoch=1, **extra) -> bytes:
    return json.dumps({"status": status, "epoch": epoch, "since": 100.0, **extra}).encode()


@pytest.fixture
def org() -> OrgState:
    return OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"])


def test_offline_device_loses_its_typing_and_cursor(org: OrgState) -> None:
    org.receive("presence/acme/ana/d1", presence("online"), retained=False, wall=0, mono=0)
    org.receive("typing/acme/lobby/ana/d1", b'{"typing":true,"ttl":5000}', retained=False, wall=0, mono=0)
    org.receive("cursor/acme/lobby/ana/d1", b'{"x":0.5,"y":0.5}', retained=False, wall=0, mono=0)
    events = org.receive("presence/acme/ana/d1", presence("offline"), retained=False, wall=1, mono=1)
    assert TypingChanged("lobby", ()) in events
    assert CursorMoved("lobby", "ana", "d1", None) in events
    assert isinstance(events[-1], PresenceChanged) and events[-1].presence.status == "offline"


def test_typing_expires_on_the_receiver_clock(org: OrgState) -> None:
    org.receive("typing/acme/lobby/ana/d1", b'{"typing":true,"ttl":2000}', retained=False, wall=0, mono=10.0)
    assert org.next_expiry() == 12.0
    assert org.expire(mono=11.9) == []
    assert org.expire(mono=12.0) == [TypingChanged("lobby", ())]


def test_typing_without_ttl_uses_default_and_huge_ttl_is_capped(org: OrgState) -> None:
    org.receive("typing/acme/lobby/ana/d1", b'{"typing":true}', retained=False, wall=0, mono=0)
    assert org.next_expiry() == 6.0
    org.receive("typing/acme/lobby/ben/d1", b'{"typing":true,"ttl":120000}', retained=False, wall=0, mono=0)
    assert org.rooms["lobby"].typists() == ("ana", "ben")


NOW = 1_800_000_000.0
"""A wall clock after the ids these tests use (2026-11-24), which were made in 2026-11."""


def test_receipts_move_forward_only(org: OrgState) -> None:
    hi, lo = "01M8NDRW12Y0E4Z042VMTMCG62", "01M8NDRW12Y0E4Z042VMTMCG61"
    assert org.receive("receipts/acme/lobby/ana", json.dumps({"up_to": hi}).encode(), retained=True, wall=NOW, mono=0) == [ReceiptMoved("lobby", "ana", hi)]
    assert org.receive("receipts/acme/lobby/ana", json.dumps({"up_to": lo}).encode(), retained=False, wall=NOW, mono=0) == []
    assert org.counters.stale == 1


def test_chat_is_kept_in_id_order_without_duplicates() -> None:
    org = OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"], history=2)
    ids = ["01M8NDRW12Y0E4Z042VMTMCG63", "01M8NDRW12Y0E4Z042VMTMCG61", "01M8NDRW12Y0E4Z042VMTMCG62"]
    for mid in ids + ids[:1]:
        org.receive("chat/acme/lobby/ana", json.dumps({"id": mid, "text": "hi"}).encode(), retained=False, wall=NOW, mono=0)
    assert [m.id for m in org.room_snapshots()["lobby"].messages] == sorted(ids)[1:]


def test_foreign_and_invalid_messages_are_counted(org: OrgState) -> None:
    assert org.receive("presence/other/ana/d1", presence("online"), retained=False, wall=0, mono=0) == []
    assert org.receive("typing/acme/elsewhere/ana/d1", b'{"typing":true}', retained=False, wall=0, mono=0) == []
    assert org.receive("presence/acme/ana/d1", b"garbage", retained=False, wall=0, mono=0) == []
    assert (org.counters.foreign, org.counters.invalid) == (2, 1)


def test_resync_drops_what_the_broker_no_longer_holds(org: OrgState) -> None:
    org.receive("presence/acme/ana/d1", presence("online"), retained=True, wall=0, mono=0)
    org.receive("presence/acme/ben/d1", presence("online"), retained=True, wall=0, mono=0)
    org.begin_resync()
    org.receive("presence/acme/ana/d1", presence("online"), retained=True, wall=0, mono=0)
    events = org.end_resync(wall=0.0)
    assert events == [PresenceChanged("ben", None)]
    assert set(org.users()) == {"ana"}


def test_a_clean_offline_says_when_it_left_never_later_and_old_offline_devices_are_listed(org: OrgState) -> None:
    org.receive("presence/acme/ana/d1", presence("offline", since=450.0), retained=False, wall=500.0, mono=0)
    assert org.users()["ana"].since == 450.0  # a tab that went 50 s ago (its grace, say)
    org.receive("presence/acme/cy/d1", presence("offline", since=9e9), retained=False, wall=500.0, mono=0)
    assert org.users()["cy"].since == 500.0  # not from the future
    org.receive("presence/acme/di/d1", json.dumps({"status": "offline"}).encode(), retained=False, wall=500.0, mono=0)
    assert org.users()["di"].since == 500.0  # the reference app says no time: when observed
    org.receive("presence/acme/ben/d1", presence("offline"), retained=True, wall=500.0, mono=0)
    assert org.offline_device_topics(older_than=200.0) == [Topic("presence", "acme", "ben", device="d1")]


def test_a_will_is_dated_when_it_fired_minus_its_delay_and_a_retained_one_is_a_lower_bound(org: OrgState) -> None:
    online = presence("online", epoch=7, since=100.0)
    will = presence("offline", epoch=7, since=100.0, will_delay=2)
    org.receive("presence/acme/ana/d1", online, retained=False, wall=400.0, mono=0)
    org.receive("presence/acme/ana/d1", will, retained=False, wall=503.0, mono=0)
    assert org.users()["ana"].since == 501.0, "the broker waited 2 s after the device left"
    assert org.fired is not None and org.fired.topic == Topic("presence", "acme", "ana", device="d1")
    org.receive("presence/acme/ana/d1", will, retained=False, wall=503.1, mono=0)
    assert org.fired is None, "a repeat of the same will is no new departure"

    late = OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"])
    late.receive("presence/acme/ana/d1", will, retained=True, wall=600.0, mono=0)
    assert (late.users()["ana"].since, late.fired) == (100.0, None), "read retained: the connection's start, a lower bound"
    said = presence("offline", epoch=7, since=501.2)  # an observer that saw it fire says when
    assert late.receive("presence/acme/ana/d1", said, retained=False, wall=601.0, mono=0) != []
    assert late.users()["ana"].since == 501.2, "a clean offline says when the device left"


def test_an_offline_already_known_exactly_is_not_changed_by_a_repeat(org: OrgState) -> None:
    org.receive("presence/acme/ana/d1", presence("online", epoch=7), retained=False, wall=400.0, mono=0)
    org.receive("presence/acme/ana/d1", presence("offline", epoch=7, will_delay=0), retained=False, wall=500.0, mono=0)
    for since, wall in ((500.004, 500.3), (499.0, 501.0)):  # the observers' "last seen", a duplicate
        assert org.receive("presence/acme/ana/d1", presence("offline", epoch=7, since=since), retained=False, wall=wall, mono=0) == []
    assert org.users()["ana"].since == 500.0
    assert org.receive("presence/acme/ana/d1", presence("online", epoch=8), retained=False, wall=502.0, mono=0) != []
    assert org.fired is None


def test_a_will_on_a_device_less_topic_or_a_stale_one_is_not_fired(org: OrgState) -> None:
    org.receive("presence/acme/ana/d1", presence("online", epoch=9), retained=False, wall=400.0, mono=0)
    org.receive("presence/acme/ana/d1", presence("offline", epoch=8, will_delay=2), retained=False, wall=500.0, mono=0)
    assert org.fired is None and org.users()["ana"].status == "online"
    org.receive("presence/acme/ben", presence("offline", will_delay=0), retained=False, wall=500.0, mono=0)
    assert org.fired is None, "a reference client's topic: not the kit's to rewrite"


def test_token_bucket_caps_a_flood_and_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=20, burst=20, monotonic=lambda: now[0])
    assert sum(bucket.take() for _ in range(200)) == 20
    assert bucket.refused == 180
    now[0] = 0.5
    assert sum(bucket.take() for _ in range(200)) == 10


def test_listening_sockets_get_tcp_nodelay_and_pass_it_on() -> None:
    import socket

    from components._compat import disable_nagle_on_listening_sockets

    with socket.socket(socket.AF_INET) as listener:  # protocol 0, as Streamlit binds it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert disable_nagle_on_listening_sockets() >= 1
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
