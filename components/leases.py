"""Leases: the bound on every ghost, on any broker.

Wills are the fast path: a device whose connection dies is shown offline by its will.
But a will lives in the broker node that holds the connection and dies with it (NATS,
any clustered broker), and some brokers lose wills in other ways; a process killed
together with its node would then stay online for ever. A lease bounds that ghost:

- a device's online or away presence carries `until` (Unix seconds) and `lease`
  (`owner/holder`, naming its process's lease topic `lease/{org}/{owner}/{holder}`);
- the process renews that one retained topic, `{"until": ...}`, for all its devices
  at once (lease_keeper.py): one message per process per renewal, not per device;
- a device's state holds until the later of its own `until` and its lease's; a watcher
  whose clock passes that (plus CLOCK_SKEW) shows the device offline, "lapsed", and
  live again if the lease is renewed after all (its process was only slow);
- a presence without `until` has no lease and never lapses (the reference mqtt.js app,
  older kits).

LeaseBook keeps that bookkeeping for one org: which live device depends on which lease,
and a heap of deadlines, so a watcher wakes once per deadline instead of scanning
devices on every message. Pure: the caller passes the wall time.
"""

from __future__ import annotations

import heapq
import itertools

from .ids import ID_PATTERN
from .presence import DevicePresence

CLOCK_SKEW = 2.0
"""Seconds past an `until` before a watcher calls it lapsed, for clocks that disagree a
little (NTP keeps them within milliseconds)."""
ANONYMOUS_OWNER = "anonymous"

Key = tuple[str, str | None]
"""(user, device)"""


def lease_owner(username: str | None, org: str) -> str:
    """The owner level of a process's lease topic: the user id of a `USER@ORG` account
    (broker_acl.py), so a user account may renew only its own leases; else the username
    itself when it is an id (a server account); else `anonymous`."""
    if username is not None:
        user, at, account_org = username.rpartition("@")
        if at and account_org == org and ID_PATTERN.fullmatch(user):
            return user
        if ID_PATTERN.fullmatch(username):
            return username
    return ANONYMOUS_OWNER


class LeaseBook:
    """Which live devices hold a lease, and when each lapses."""

    def __init__(self) -> None:
        self._leases: dict[str, float] = {}
        """owner/holder -> until, from the lease topics."""
        self._live: dict[Key, DevicePresence] = {}
        self._lapsed: dict[Key, DevicePresence] = {}
        """Lapsed states a renewal of their lease brings back."""
        self._of_lease: dict[str, set[Key]] = {}
        self._deadlines: list[tuple[float, int, str | Key]] = []
        """(until, tie-break, a lease name or a device key), at most one due per key
        (`_due`): a later until is looked at when the earlier one comes, so renewals
        push nothing; entries superseded by an earlier one are skipped when they come,
        and the heap is rebuilt from `_due` if they ever outnumber it (a hostile flood)."""
        self._due: dict[str | Key, float] = {}
        self._order = itertools.count()

    def valid_until(self, state: DevicePresence) -> float:
        own = state.until or 0.0
        lease = self._leases.get(state.lease) if state.lease else None
        return own if lease is None else max(own, lease)

    def leases(self) -> dict[str, float]:
        return dict(self._leases)

    # -- device states ------------------------------------------------------------------
    def hold(self, user: str, state: DevicePresence, *, wall: float) -> bool:
        """Track a device's new state. False when it has lapsed already (a retained
        online of a process that died long ago): show `state.lapsed(...)` instead."""
        key = (user, state.device)
        self.release(user, state.device)
        if not state.live or state.until is None:
            return True
        if state.lease:
            self._of_lease.setdefault(state.lease, set()).add(key)
        if self._is_due(state, wall):
            self._lapsed[key] = state
            return False
        self._live[key] = state
        self._schedule(key, state.until)
        return True

    def release(self, user: str, device: str | None) -> None:
        """The device's state is gone or replaced (offline, cleared, a newer epoch)."""
        key = (user, device)
        state = self._live.pop(key, None) or self._lapsed.pop(key, None)
        if state is not None and state.lease:
            held = self._of_lease.get(state.lease)
            if held is not None:
                held.discard(key)
                if not held:
                    del self._of_lease[state.lease]

    # -- lease documents -----------------------------------------------------------------
    def renew(self, lease: str, until: float, *, wall: float) -> list[tuple[str, DevicePresence]]:
        """A lease document arrived. Returns the lapsed devices it brings back."""
        self._leases[lease] = until
        self._schedule(lease, until)
        if until + CLOCK_SKEW <= wall:
            return []
        back = []
        for key in self._of_lease.get(lease, ()):
            state = self._lapsed.pop(key, None)
            if state is not None:
                self._live[key] = state
                back.append((key[0], state))
        return back

    def end(self, lease: str, *, wall: float) -> list[tuple[str, DevicePresence]]:
        """The lease topic was cleared: its devices fall back on their own `until`.
        Returns those that lapse by that."""
        self._leases.pop(lease, None)
        return self._lapse_lease(lease, wall)

    def stale_leases(self, *, older_than: float) -> list[str]:
        """Leases that ran out before `older_than`: retained topics to clear."""
        return [lease for lease, until in self._leases.items() if until < older_than]

    # -- time ----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """Wall time of the next check (maybe a stale entry's: the check skips it)."""
        return self._deadlines[0][0] + CLOCK_SKEW if self._deadlines else None

    def lapse(self, *, wall: float) -> list[tuple[str, DevicePresence]]:
        """The devices whose state lapsed by `wall`, each with the state that lapsed."""
        lapsed: list[tuple[str, DevicePresence]] = []
        while self._deadlines and self._deadlines[0][0] + CLOCK_SKEW <= wall:
            when, _, what = heapq.heappop(self._deadlines)
            if self._due.get(what) != when:
                continue  # superseded by an earlier deadline of the same key
            del self._due[what]
            if isinstance(what, str):
                until = self._leases.get(what)
                if until is not None and until > when:
                    self._schedule(what, until)  # renewed since
                elif until is not None:
                    lapsed += self._lapse_lease(what, wall)
            else:
                state = self._live.get(what)
                if state is None or state.until is None:
                    continue
                if state.until > when:
                    self._schedule(what, state.until)  # a newer state of the device
                elif self._is_due(state, wall):
                    lapsed.append(self._to_lapsed(what))
                # else its lease covers it: the lease's own deadline looks again
        return lapsed

    def _schedule(self, key: str | Key, when: float) -> None:
        pending = self._due.get(key)
        if pending is not None and pending <= when:
            return
        self._due[key] = when
        heapq.heappush(self._deadlines, (when, next(self._order), key))
        if len(self._deadlines) > 2 * len(self._due) + 1024:
            self._deadlines = [(due, next(self._order), k) for k, due in self._due.items()]
            heapq.heapify(self._deadlines)

    def _lapse_lease(self, lease: str, wall: float) -> list[tuple[str, DevicePresence]]:
        keys = [key for key in self._of_lease.get(lease, ()) if key in self._live and self._is_due(self._live[key], wall)]
        return [self._to_lapsed(key) for key in keys]

    def _is_due(self, state: DevicePresence, wall: float) -> bool:
        return self.valid_until(state) + CLOCK_SKEW <= wall

    def _to_lapsed(self, key: Key) -> tuple[str, DevicePresence]:
        state = self._live.pop(key)
        self._lapsed[key] = state
        return key[0], state
