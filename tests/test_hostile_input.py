"""Hostile input (issue 7): arbitrary bytes, wrong JSON, huge payloads, wrong types and
out-of-range values on every topic the kit reads, and arbitrary YAML to the loader.

The receive path is tested pure (OrgState, many examples) and through a real broker
(fewer examples): the session stays up and counts what it dropped. The loader only ever
raises ConfigError."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from components import BrokerSettings, ConfigError, InvalidPayload, PresenceSession, load_app_text
from components.org_state import OrgState
from components.payloads import MAX_PAYLOAD_BYTES, decode
from components.topics import PAYLOAD_OF, Topic, TopicScheme

from helpers import REPO, wait_for

ORG = "acme"
ROOM = "lobby"

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=15)

FIELDS = {
    "presence": ["status", "epoch", "since", "name", "avatar", "rooms", "until", "lease"],
    "lease": ["until"],
    "typing": ["typing", "ttl"],
    "cursor": ["x", "y", "region", "visible"],
    "receipt": ["up_to", "at"],
    "chat": ["id", "text", "name", "at"],
    "reaction": ["emoji", "count"],
}
edge_values = st.sampled_from([
    -1, 0, 1, 2, 99, 100, 1000, 1001, 120001, 2**53, 2**64, -(2**63), 1e11, 1e300, -0.0, 0.5, 1.0000001,
    "", "online", "offline", "away", "dancing", "x" * 5000, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "#", "a/b", "mallory/d1",
    True, False, None, [], {}, [1, 2], {"status": "online"},
])  # fmt: skip


@st.composite
def near_valid(draw: st.DrawFn, kind: str) -> bytes:
    """A document with the kind's own field names and wrong types or out-of-range values."""
    names = draw(st.lists(st.sampled_from(FIELDS[kind]), unique=True, max_size=len(FIELDS[kind])))
    doc = {name: draw(edge_values | json_scalars) for name in names}
    return json.dumps(doc, allow_nan=True).encode()


def payloads(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=64),
        json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        near_valid(kind),
        st.sampled_from([b"NaN", b"Infinity", b'{"status": NaN}', b"[" * 5000, b"{" * 100_000, b"\xef\xbb\xbf{}", b" " * (MAX_PAYLOAD_BYTES + 1)]),
        st.integers(min_value=MAX_PAYLOAD_BYTES - 2, max_value=MAX_PAYLOAD_BYTES + 2).map(lambda n: b'{"status":"online","name":"' + b"x" * n + b'"}'),
    )


def topic_of(kind: str, user: str = "mallory", device: str = "d1") -> Topic:
    return Topic(kind, ORG, user, room=None if kind in ("presence", "lease") else ROOM, device=device if kind in ("presence", "lease", "typing", "cursor") else None)  # type: ignore[arg-type]


any_message = st.sampled_from(sorted(PAYLOAD_OF)).flatmap(lambda kind: st.tuples(st.just(kind), payloads(PAYLOAD_OF[kind])))


def is_valid(kind: str, payload: bytes) -> bool:
    try:
        decode(kind, payload)  # type: ignore[arg-type]
    except InvalidPayload:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.lists(any_message, min_size=1, max_size=8), st.booleans())
def test_any_payload_on_any_topic_is_applied_or_counted_never_raised(messages, retained: bool) -> None:
    scheme = TopicScheme()
    state = OrgState(scheme=scheme, org=ORG, rooms=[ROOM])
    invalid = 0
    for kind, payload in messages:
        state.receive(scheme.render(topic_of(kind)), payload, retained=retained, wall=time.time(), mono=time.monotonic())
        invalid += bool(payload) and not is_valid(PAYLOAD_OF[kind], payload)
    assert state.counters.invalid == invalid
    assert state.counters.received == len(messages)
    for user in state.users().values():  # whatever got in is well-formed
        assert user.status in ("online", "away", "offline") and (user.since is None or math.isfinite(user.since))


level = st.text(max_size=12) | st.sampled_from(["+", "#", "", "a b", "ü", "..", "a\x00b", "x" * 65])


@settings(max_examples=300, deadline=None)
@given(st.lists(level, min_size=1, max_size=6), st.binary(max_size=32))
def test_topic_names_outside_the_scheme_are_foreign(levels, payload: bytes) -> None:
    scheme = TopicScheme(prefix="p")
    state = OrgState(scheme=scheme, org=ORG, rooms=[ROOM])
    name = "p/" + "/".join(levels)
    state.receive(name, payload, retained=False, wall=time.time(), mono=time.monotonic())
    parsed = scheme.parse(name)
    if parsed is None:
        assert state.counters.foreign == 1 and state.users() == {}
    else:  # it parsed, so every level is a valid id: no wildcard, no separator
        assert all(part not in ("+", "#", "") for part in parsed.levels())


# -- through a real broker ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_a_session_under_hostile_traffic_stays_up_and_counts_it(shared_broker, prefix: str, version: str) -> None:
    scheme = TopicScheme(prefix=prefix)
    url = f"mqtt://127.0.0.1:{shared_broker.port}"
    rogue = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5 if version == "5" else MQTTProtocolVersion.MQTTv311)
    rogue.connect("127.0.0.1", shared_broker.port)
    rogue.loop_start()

    with PresenceSession(BrokerSettings.from_url(url, protocol=version, topic_prefix=prefix, keepalive=5), org=ORG, rooms=[ROOM]) as session:  # type: ignore[arg-type]
        assert session.wait_synced(5)
        sent = {"invalid": 0, "total": 0}

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.lists(any_message, min_size=1, max_size=6))
        def publish(messages) -> None:
            for kind, payload in messages:
                rogue.publish(scheme.render(topic_of(kind, user="mallory", device="d1")), payload, qos=1, retain=False).wait_for_publish(5)
                sent["total"] += 1
                sent["invalid"] += bool(payload) and not is_valid(PAYLOAD_OF[kind], payload)

        publish()
        # the session is still up: a well-behaved device appears, and every bad message is counted
        device = session.open_device(user="fine", device="d1")
        assert wait_for(lambda: "fine" in session.snapshot().users and session.state.users()["fine"].status == "online", timeout=5)
        assert wait_for(lambda: session.stats().invalid == sent["invalid"], timeout=5), (session.stats(), sent)
        stats = session.stats()
        assert stats.connected and stats.listener_errors == 0 and session.network.callback_errors == 0
        assert device.connected and session.network.running
        # retained garbage is cleaned up for the next test run on this broker
        rogue.publish(scheme.render(topic_of("presence")), b"", qos=1, retain=True).wait_for_publish(5)
    rogue.loop_stop()
    rogue.disconnect()


# -- the app-file loader ------------------------------------------------------------------------

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


def _replace(value: object, path: tuple, new: object) -> object:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)  # type: ignore[arg-type]
    copy[head] = _replace(copy[head], tuple(rest), new)  # type: ignore[index]
    return copy


yaml_oddities = st.sampled_from([
    "!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=", "*undefined_alias", "&a [*a]", "<<: {a: 1}",
    "!!timestamp 2001-12-14", "? [complex, key]\n: v", "%YAML 1.1\n---\n", "---\n...\n---\n", "\t", "@", "`",
    "0o17", "0x1F", ".inf", ".nan", "~", "'''", '"\\x"', "- - - -", "{a: [b, {c: d}]}", "\ufeff", "\x00",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_examples_give_settings_or_config_error(example: Path, data: st.DataObject) -> None:
    document = yaml.safe_load(example.read_text())
    path = data.draw(st.sampled_from(_paths(document)))
    new = data.draw(json_values | edge_values)
    text = yaml.safe_dump(_replace(document, path, new), allow_unicode=True)
    if data.draw(st.booleans()):  # and some raw YAML syntax spliced in at a line start
        lines = text.splitlines()
        at = data.draw(st.integers(0, len(lines)))
        text = "\n".join([*lines[:at], data.draw(yaml_oddities), *lines[at:]])
    try:
        load_app_text(text, environ={})
    except ConfigError as exc:
        assert exc.problems and all(str(p).strip() for p in exc.problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_unicode_text_gives_settings_or_config_error(text: str) -> None:
    try:
        load_app_text(text, environ={})
    except ConfigError as exc:
        assert exc.problems
