"""Leases in the pure core, with the wall time passed in (a fake clock): a live state
lapses to offline when neither its own `until` nor its process's lease covers the
watcher's clock, comes back when the lease is renewed after all, and never lapses
without a lease (the reference app, older kits)."""

from __future__ import annotations

import json

from components.events import PresenceChanged, TypingChanged
from components.leases import CLOCK_SKEW, LeaseBook, lease_owner
from components.org_state import OrgState
from components.presence import DevicePresence
from components.topics import Topic, TopicScheme

SCHEME = TopicScheme()


def org() -> OrgState:
    return OrgState(scheme=SCHEME, org="acme", rooms=["lobby"])


def presence(state: OrgState, user: str, device: str | None, doc: dict | None, *, wall: float, retained: bool = False) -> list:
    name = SCHEME.render(Topic("presence", "acme", user, device=device))
    return state.receive(name, b"" if doc is None else json.dumps(doc).encode(), retained=retained, wall=wall, mono=0.0)


def lease(state: OrgState, owner: str, holder: str, until: float | None, *, wall: float, retained: bool = False) -> list:
    name = SCHEME.render(Topic("lease", "acme", owner, device=holder))
    return state.receive(name, b"" if until is None else json.dumps({"until": until}).encode(), retained=retained, wall=wall, mono=0.0)


def online(epoch: int = 1, *, until: float | None = None, lease: str | None = None) -> dict:
    doc = {"status": "online", "epoch": epoch, "since": 10.0}
    if until is not None:
        doc["until"] = until
    if lease is not None:
        doc["lease"] = lease
    return doc


def status(state: OrgState, user: str) -> str | None:
    held = state.presence.user(user)
    return held.status if held else None


def test_a_leased_state_lapses_when_the_watchers_clock_passes_until() -> None:
    state = org()
    presence(state, "ana", "d1", online(until=1000.0), wall=990.0)
    assert status(state, "ana") == "online"
    assert state.next_lapse() == 1000.0 + CLOCK_SKEW
    assert state.lapse(wall=1000.0 + CLOCK_SKEW - 0.01) == ([], [])
    events, lapsed = state.lapse(wall=1000.0 + CLOCK_SKEW)
    assert [(e.user, e.presence.status) for e in events if isinstance(e, PresenceChanged)] == [("ana", "offline")]
    assert [(user, s.epoch) for user, s in lapsed] == [("ana", 1)]
    assert state.presence.device("ana", "d1").since == 1000.0  # last seen: when the lease ran out


def test_one_lease_renewal_extends_every_device_of_the_process() -> None:
    state = org()
    for user in ("ana", "ben", "cy"):
        presence(state, user, "tab", online(until=1000.0, lease="srv/h1"), wall=990.0)
    lease(state, "srv", "h1", 1060.0, wall=995.0)
    assert state.lapse(wall=1030.0) == ([], [])  # their own until passed, the lease covers them
    assert {status(state, u) for u in ("ana", "ben", "cy")} == {"online"}
    events, lapsed = state.lapse(wall=1060.0 + CLOCK_SKEW)
    assert sorted(user for user, _ in lapsed) == ["ana", "ben", "cy"]
    assert {status(state, u) for u in ("ana", "ben", "cy")} == {"offline"}


def test_a_late_renewal_brings_the_lapsed_devices_back_with_the_same_epoch() -> None:
    state = org()
    presence(state, "ana", "d1", online(epoch=7, until=1000.0, lease="srv/h1"), wall=990.0)
    state.lapse(wall=1010.0)
    assert status(state, "ana") == "offline"
    events = lease(state, "srv", "h1", 1070.0, wall=1011.0)
    assert [(e.user, e.presence.status) for e in events if isinstance(e, PresenceChanged)] == [("ana", "online")]
    assert state.presence.device("ana", "d1").epoch == 7


def test_without_a_lease_nothing_ever_lapses() -> None:
    state = org()
    presence(state, "ref", None, {"status": "online"}, wall=0.0)  # the reference mqtt.js app
    presence(state, "old", "d1", {"status": "online", "epoch": 5, "since": 1.0}, wall=0.0)  # an older kit
    assert state.next_lapse() is None
    assert state.lapse(wall=1e10) == ([], [])
    assert status(state, "ref") == status(state, "old") == "online"


def test_a_late_joiner_sees_a_long_lapsed_online_as_offline_from_the_start() -> None:
    state = org()
    state.begin_resync()
    presence(state, "ghost", "d1", online(until=100.0, lease="srv/dead"), wall=5000.0, retained=True)
    lease(state, "srv", "dead", 160.0, wall=5000.0, retained=True)
    presence(state, "live", "d1", online(until=4990.0, lease="srv/up"), wall=5000.0, retained=True)
    lease(state, "srv", "up", 5050.0, wall=5000.0, retained=True)  # arrives after its device
    state.end_resync(wall=5000.0)
    assert status(state, "ghost") == "offline" and status(state, "live") == "online"
    assert state.snapshot(complete=True).users["ghost"].status == "offline"


def test_a_cleared_lease_leaves_its_devices_to_their_own_until() -> None:
    state = org()
    presence(state, "ana", "d1", online(until=1000.0, lease="srv/h1"), wall=990.0)
    presence(state, "ben", "d1", online(until=1200.0, lease="srv/h1"), wall=990.0)
    lease(state, "srv", "h1", 1100.0, wall=995.0)
    lease(state, "srv", "h1", None, wall=1050.0)  # the process left cleanly, or an observer reaped it
    assert status(state, "ana") == "offline" and status(state, "ben") == "online"


def test_a_lease_of_another_owner_extends_nothing() -> None:
    state = org()
    presence(state, "ana", "d1", online(until=1000.0, lease="srv/h1"), wall=990.0)
    lease(state, "mallory", "h1", 9e9, wall=995.0)  # a user account may write only its own leases
    state.lapse(wall=1010.0)
    assert status(state, "ana") == "offline"


def test_an_offline_or_a_newer_state_ends_what_the_lease_holds() -> None:
    state = org()
    presence(state, "ana", "d1", online(epoch=1, until=1000.0), wall=990.0)
    presence(state, "ana", "d1", {"status": "offline", "epoch": 1, "since": 995.0}, wall=995.0)
    presence(state, "ben", "d1", online(epoch=1, until=1000.0), wall=990.0)
    presence(state, "ben", "d1", online(epoch=2, until=2000.0), wall=995.0)  # reconnected
    events, lapsed = state.lapse(wall=1500.0)
    assert (events, lapsed) == ([], [])
    assert status(state, "ben") == "online"


def test_a_buried_device_is_not_brought_back_by_a_renewal() -> None:
    """Once an observer published the offline the will would have carried, only the
    device itself (re-asserting its epoch) makes it live again."""
    state = org()
    presence(state, "ana", "d1", online(until=1000.0, lease="srv/h1"), wall=990.0)
    state.lapse(wall=1010.0)
    presence(state, "ana", "d1", {"status": "offline", "epoch": 1, "since": 1000.0}, wall=1010.5)
    assert lease(state, "srv", "h1", 1100.0, wall=1011.0) == []
    assert status(state, "ana") == "offline"


def test_a_lapsed_device_loses_its_typing_at_once() -> None:
    state = org()
    presence(state, "ana", "d1", online(until=1000.0), wall=990.0)
    state.receive("typing/acme/lobby/ana/d1", b'{"typing": true, "ttl": 60000}', retained=False, wall=990.0, mono=0.0)
    assert state.rooms["lobby"].typists() == ("ana",)
    events, _ = state.lapse(wall=1010.0)
    assert TypingChanged("lobby", ()) in events


def test_deadlines_are_checked_once_each_and_stale_ones_skipped() -> None:
    book = LeaseBook()
    state = DevicePresence(device="d1", status="online", epoch=1, since=0.0, until=100.0, lease="srv/h1")
    assert book.hold("ana", state, wall=0.0)
    for until in (150.0, 200.0, 250.0):  # renewals push new deadlines; the old ones go stale
        book.renew("srv/h1", until, wall=until - 50)
    assert book.lapse(wall=210.0) == []
    assert book.next_deadline() == 250.0 + CLOCK_SKEW
    assert book.lapse(wall=260.0) == [("ana", state)]
    assert book.next_deadline() is None


def test_the_owner_of_a_lease_is_the_accounts_user() -> None:
    assert lease_owner("ana@acme", "acme") == "ana"  # a user account (deploy/: USER@ORG)
    assert lease_owner("streamlit", "acme") == "streamlit"  # a server account
    assert lease_owner(None, "acme") == lease_owner("ana@other", "acme") == lease_owner("a b", "acme") == "anonymous"


def test_the_will_of_a_connection_attempt_never_announced_does_not_end_a_leased_state() -> None:
    """A NATS node that stalled a CONNECT fires that attempt's will: a newer epoch's
    offline with no online before it. The device is reconnecting elsewhere; its next
    connection, or its lease, decides."""
    state = org()
    presence(state, "ana", "d1", online(epoch=10, until=1060.0), wall=1000.0)
    assert presence(state, "ana", "d1", {"status": "offline", "epoch": 11, "since": 1001.0}, wall=1005.0) == []
    assert status(state, "ana") == "online" and state.counters.unannounced == 1
    presence(state, "ana", "d1", online(epoch=12, until=1070.0), wall=1006.0)
    assert status(state, "ana") == "online"
    presence(state, "ana", "d1", {"status": "offline", "epoch": 12, "since": 1007.0}, wall=1007.0)  # its own will
    assert status(state, "ana") == "offline"
    # without a lease (the reference app, older kits) a newer offline wins as before
    presence(state, "old", "d1", {"status": "online", "epoch": 10, "since": 1.0}, wall=1000.0)
    presence(state, "old", "d1", {"status": "offline", "epoch": 11, "since": 2.0}, wall=1000.0)
    assert status(state, "old") == "offline"


def test_a_flood_of_renewals_keeps_one_deadline_per_lease() -> None:
    """Renewals push nothing while an earlier deadline of the same lease is pending, and
    a flood of ever earlier ones (hostile) cannot grow the heap without bound."""
    book = LeaseBook()
    for i in range(10_000):
        book.renew("mallory/p1", 1_000.0 + i, wall=0.0)
    for i in range(10_000):
        book.renew("mallory/p2", 1e9 - i, wall=0.0)
    assert len(book._deadlines) <= 2 * 2 + 1024 + 1
    state = DevicePresence(device="d1", status="online", epoch=1, since=0.0, until=100.0, lease="mallory/p1")
    book.hold("ana", state, wall=0.0)
    assert book.lapse(wall=10_998.0 + CLOCK_SKEW) == []  # the lease's latest until still covers her
    assert book.lapse(wall=10_999.0 + CLOCK_SKEW) == [("ana", state)]
