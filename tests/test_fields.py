"""Who edits which field, and the soft-lock rule, in the pure core (issue 13): presence
documents go in, the room's field state and its lock holders come out. No network."""

from __future__ import annotations

import itertools
import json

import pytest

from components.errors import InvalidId
from components.events import FieldsChanged, PresenceChanged
from components.fields import check_field, lock_holders
from components.org_state import OrgState
from components.topics import TopicScheme

WALL = 1_700_000_000.0


@pytest.fixture
def org() -> OrgState:
    return OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"])


def presence(user: str, device: str, *, status: str = "online", epoch: int = 1, focus: dict | None = None, **extra) -> tuple[str, bytes]:
    doc = {"status": status, "epoch": epoch, "since": WALL, **extra}
    if focus is not None:
        doc["focus"] = focus
    return f"presence/acme/{user}/{device}", json.dumps(doc).encode()


def claim(field: str, claimed: int, *, room: str = "lobby", lock: bool = True, label: str | None = None) -> dict:
    doc = {"room": room, "field": field, "claimed": claimed, "lock": lock}
    if label is not None:
        doc["label"] = label
    return doc


def feed(org: OrgState, message: tuple[str, bytes] | tuple[str, bytes, bool]) -> list:
    name, payload, *retained = message
    return org.receive(name, payload, retained=bool(retained and retained[0]), wall=WALL, mono=0.0)


def holder(org: OrgState, field: str, room: str = "lobby") -> tuple[str, str | None] | None:
    held = lock_holders(org.rooms[room].fields.entries()).get(field)
    return (held.user, held.device) if held else None


def test_the_lowest_claim_holds_then_the_lowest_device_then_user_in_any_arrival_order() -> None:
    claims = [
        presence("ben", "d9", focus=claim("title", 200)),
        presence("ana", "d5", focus=claim("title", 100)),
        presence("cy", "d1", focus=claim("title", 100)),  # same moment as ana: device d1 < d5
        presence("ana", "d1", focus=claim("title", 100)),  # same moment and device as cy: user ana < cy
        presence("dan", "d0", focus=claim("title", 50, lock=False)),  # looking, not claiming
        presence("eve", "d0", focus=claim("notes", 10)),  # another field
    ]
    seen = set()
    for order in itertools.permutations(claims):
        state = OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"])
        for message in order:
            feed(state, message)
        seen.add((holder(state, "title"), holder(state, "notes")))
    assert seen == {(("ana", "d1"), ("eve", "d0"))}


def test_focus_in_presence_makes_room_events_and_offline_or_a_cleared_topic_ends_it(org: OrgState) -> None:
    events = feed(org, presence("ana", "d1", focus=claim("title", 100, label="Title")))
    (changed,) = [e for e in events if isinstance(e, FieldsChanged)]
    (entry,) = changed.entries
    assert (changed.room, entry.user, entry.focus.field, entry.focus.label, entry.focus.lock) == ("lobby", "ana", "title", "Title", True)
    assert [e.presence.focus.field for e in events if isinstance(e, PresenceChanged)] == ["title"]
    assert holder(org, "title") == ("ana", "d1")

    events = feed(org, presence("ana", "d1", status="offline"))  # the will: same epoch, offline
    assert [e.entries for e in events if isinstance(e, FieldsChanged)] == [()]
    assert holder(org, "title") is None and org.users()["ana"].focus is None

    feed(org, presence("ana", "d1", epoch=2, focus=claim("title", 300)))
    events = feed(org, ("presence/acme/ana/d1", b""))
    assert [e.entries for e in events if isinstance(e, FieldsChanged)] == [()]


def test_a_stale_will_does_not_free_a_lock_and_an_offline_payload_holds_no_focus(org: OrgState) -> None:
    feed(org, presence("ana", "d1", epoch=5, focus=claim("title", 100)))
    assert feed(org, presence("ana", "d1", epoch=4, status="offline")) == []
    assert holder(org, "title") == ("ana", "d1")
    # an offline document that claims a field (no kit device writes one) claims nothing
    feed(org, presence("ben", "d1", status="offline", focus=claim("notes", 1)))
    assert holder(org, "notes") is None


def test_blur_and_moving_to_another_field_change_the_room_state(org: OrgState) -> None:
    feed(org, presence("ana", "d1", focus=claim("title", 100)))
    feed(org, presence("ana", "d1", focus=claim("notes", 101)))
    assert holder(org, "title") is None and holder(org, "notes") == ("ana", "d1")
    events = feed(org, presence("ana", "d1"))  # blur: the same presence without a focus
    assert [e.entries for e in events if isinstance(e, FieldsChanged)] == [()]


def test_a_room_entered_later_gets_the_field_state_presence_already_told(org: OrgState) -> None:
    assert [e for e in feed(org, presence("ana", "d1", focus=claim("title", 100, room="ticket-1"))) if isinstance(e, FieldsChanged)] == []
    org.add_room("ticket-1")
    assert holder(org, "title", room="ticket-1") == ("ana", "d1")
    assert holder(org, "title") is None  # not lobby's


def test_follow_and_unfollowable_are_room_state_too(org: OrgState) -> None:
    feed(org, presence("ben", "d1", follow={"room": "lobby", "user": "ana"}))
    feed(org, presence("ana", "d2", rooms=["lobby"], unfollowable=True))
    entries = {e.user: e for e in org.rooms["lobby"].fields.entries()}
    assert entries["ben"].follows == "ana" and entries["ben"].focus is None
    assert entries["ana"].unfollowable and entries["ana"].follows is None


def test_a_new_claim_queues_behind_every_claim_held() -> None:
    org = OrgState(scheme=TopicScheme(), org="acme", rooms=["lobby"])
    assert org.rooms["lobby"].fields.floor("title") == 0
    feed(org, presence("ana", "d1", focus=claim("title", 100)))
    feed(org, presence("ben", "d1", focus=claim("title", 101)))
    assert org.rooms["lobby"].fields.floor("title") == 102
    assert org.rooms["lobby"].fields.floor("notes") == 0


@pytest.mark.parametrize("focus", [
    {"room": "lobby", "field": "a b", "claimed": 1},
    {"room": "lobby", "field": "title"},
    {"room": "a/b", "field": "title", "claimed": 1},
    {"room": "lobby", "field": "title", "claimed": -1},
    {"room": "lobby", "field": "title", "claimed": 1, "label": "x" * 201},
])
def test_a_malformed_focus_is_dropped_and_counted(org: OrgState, focus: dict) -> None:
    feed(org, presence("ana", "d1", focus=focus))
    assert org.counters.invalid == 1 and org.rooms["lobby"].fields.entries() == () and org.users() == {}


def test_a_label_is_cleaned_like_a_name(org: OrgState) -> None:
    feed(org, presence("ana", "d1", focus=claim("title", 1, label="Ti\u202etle\u200b  x")))
    (entry,) = org.rooms["lobby"].fields.entries()
    assert entry.focus.label == "Title x"  # no bidi override, no zero-width space, one space


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "#", "x" * 65, None])
def test_field_ids_are_class_name_safe(bad: object) -> None:
    with pytest.raises(InvalidId, match="invalid field id"):
        check_field(bad)
    assert check_field("title_2-b") == "title_2-b"


def test_a_claim_stamped_in_the_future_is_refused_and_the_rest_of_the_presence_kept(org: OrgState) -> None:
    feed(org, presence("mallory", "d1", focus=claim("title", int((WALL + 3600) * 1000))))  # first forever, or 2**53
    assert org.counters.refused == 1 and org.users()["mallory"].status == "online"
    assert org.rooms["lobby"].fields.entries() == () and org.rooms["lobby"].fields.floor("title") == 0
    feed(org, presence("ana", "d1", focus=claim("title", int((WALL + 20) * 1000))))  # a clock a little ahead
    assert holder(org, "title") == ("ana", "d1")
