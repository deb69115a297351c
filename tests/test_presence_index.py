"""The bridge's index of who is in which scope (issue 11), pure: membership by live
devices' rooms, display order, counts, and pages of a big scope."""

from __future__ import annotations

from components.presence import UserPresence
from components.presence_index import PresenceIndex


def user(name: str, status: str = "online", *, rooms: tuple[str, ...] = (), since: float = 100.0, display: str | None = None) -> UserPresence:
    return UserPresence(user=name, status=status, since=since, devices=int(status != "offline"), name=display, rooms=frozenset(rooms))  # type: ignore[arg-type]


def test_display_order_is_online_then_away_by_name_then_offline_most_recent_first() -> None:
    index = PresenceIndex()
    index.reset([
        user("u1", "offline", since=10), user("u2", "away", display="bea"), user("u3", display="Zed"),
        user("u4", display="ana"), user("u5", "offline", since=50), user("u6", "away", display="Al"),
    ])
    assert [p.user for p in index.org.page(limit=10)] == ["u4", "u3", "u6", "u2", "u5", "u1"]
    assert [p.user for p in index.org.page(limit=2, offset=3)] == ["u2", "u5"]
    assert dict(index.org.counts) == {"online": 2, "away": 2, "offline": 2}


def test_rooms_are_indexed_on_demand_and_follow_their_members() -> None:
    index = PresenceIndex()
    index.reset([user("ana", rooms=("a",)), user("ben", rooms=("a", "b")), user("cy", rooms=("b",))])
    index.track("a")
    assert [p.user for p in index.scope("a").page(limit=10)] == ["ana", "ben"]
    touched = index.apply("ben", user("ben", rooms=("b",)))  # ben's tab in room a closed
    assert touched == {None, "a"}  # b is not tracked: nobody watches it
    assert [p.user for p in index.scope("a").page(limit=10)] == ["ana"]
    assert index.apply("cy", user("cy", "away", rooms=("b",))) == {None}
    index.track("b")
    assert [p.user for p in index.scope("b").page(limit=10)] == ["ben", "cy"]
    assert index.apply("ana", None) == {None, "a"}
    assert len(index.scope("a")) == 0 and len(index.org) == 2
    index.untrack("a")
    assert "a" not in index.rooms


def test_a_page_of_a_huge_scope_costs_the_page() -> None:
    index = PresenceIndex()
    index.reset([user(f"u{i:05}", "offline", since=float(i)) for i in range(10_000)])
    index.apply("u00005", user("u00005", "online"))
    page = index.org.page(limit=3)
    assert [p.user for p in page] == ["u00005", "u09999", "u09998"]
    assert dict(index.org.counts) == {"online": 1, "offline": 9999}
