"""The real-time bridge: one WebSocket per browser tab on the Streamlit server itself,
between the tab and the process's shared session.

- A tab connects to `/presence-kit/ws` and its first frame is `{"t": "hello", "tokens":
  [T...], "device": D, "watch": W}` (never in the URL, where logs and Referers keep it).
  The signed tokens (minted by the page for the identified user, one per render call)
  say who the tab is and which rooms it may see; D is the tab's device id, kept in
  sessionStorage so a reload keeps it; W is what its widgets show. What may connect,
  and how many, is checked first (components/tab_admission.py): the page's Origin,
  sockets per client address, the tokens (forged, expired, other org, or bound to
  another device: 4401), live devices per user (4429); a device id already live in
  another tab is refused (4409) and the tab takes a new one. A room the tab asks for
  and was not given is refused (a `refused` frame), never sent or written.
- Each tab is a device with its own will-carrying MQTT connection, opened when its
  socket opens. When the socket closes the device is kept for the leave grace; a socket
  that comes back with the same device id in time adopts it (no offline, no flicker),
  otherwise the device leaves cleanly (explicit offline). The grace is applied here, once.
- Liveness is the WebSocket itself: uvicorn pings every tab at the protocol level
  (`server.websocketPingInterval`), so a background tab whose timers are throttled is
  not taken for dead, and a tab whose network vanished is.
- The tab's device is in the rooms the tab shows (its presence says so), and the
  session watches those rooms while the device lives (rooms on demand). What the tab is
  sent is components/tab_fanout.py's: only what it shows, built once per view.
  Nothing goes through Streamlit reruns.
- Inbound messages are validated against schemas/tab-message.schema.json and rate
  limited per tab and per user (all of a user's tabs together); a flood's excess is
  dropped and counted. Reactions must be among the room's configured emojis.
- Chat history is never read or written on the event loop: the store blocks, so a
  tab's chat message (stored before it is published, when the session has a store),
  a history page and a read receipt's look-up run on HISTORY_THREADS threads. A
  device's messages are stored and published one at a time, in the order its tab sent
  them (ids are made in that order, and two writes in flight could commit out of it);
  a `chat` with a nonce is answered with a `chat_ack`: its id once stored and handed
  to MQTT, or why not (then nothing was stored or published). A read receipt is
  accepted only for a message the kit knows: held in memory, else found in the store.
- Fields: a tab says which field its person edits (`focus`, with `lock` a soft-lock
  claim) only in a room whose fields it shows; when it stops showing them (another
  page, a reload that shows none) its device edits nothing there any more. Focus and
  follow changes re-announce the device's presence, so they are rate limited apart.
- One bad message costs at most itself, one bad tab at most itself: a message that
  cannot be handled, serialised or sent is dropped, logged and counted (the health
  route shows the counts), and every other tab keeps receiving.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from .device import Device
from .errors import HistoryUnavailable, InvalidId, InvalidPayload, InvalidToken, TokenExpired
from .events import ChatMessage, Event, ReactionReceived, RoomSnapshot
from .ids import check_id
from .payloads import decode
from .rate_limit import TokenBucket
from .rooms import DEFAULT_TYPING_TTL
from .session import PresenceSession
from .tab_admission import (
    CLOSE_BAD_ORIGIN,
    CLOSE_BAD_REQUEST,
    CLOSE_BAD_TOKEN,
    CLOSE_DEVICE_TAKEN,
    CLOSE_TOO_MANY_DEVICES,
    CLOSE_TOO_MANY_SOCKETS,
    AddressCounter,
    AdmissionLimits,
    TokenBindings,
    origin_allowed,
)
from .tab_fanout import PRESENCE_TICK, Fanout, Tab
from .tab_history import PAGE, Done, HistorySource
from .tab_protocol import TabEncoder, dumps
from .tab_views import Watch
from .tokens import Claims, TokenSigner
from .widget_texts import REFERENCE, language_tables

log = logging.getLogger(__name__)

WS_PATH = "/presence-kit/ws"
HEALTH_PATH = "/presence-kit/health"
WRITE_BATCH = 64
"""Most messages sent to a tab in one frame (a JSON array of them). Batching what is
queued is also what keeps a join from stalling: Streamlit binds its listening socket with
protocol 0, so asyncio never sets TCP_NODELAY on the connections it accepts, and a second
small frame written while the first is unacknowledged waits for the browser's delayed
ACK (40 ms on Linux)."""
HELLO_TIMEOUT = 5.0
"""Seconds a new socket has to send its hello frame."""
USER_RATE, USER_BURST = 80.0, 160.0
"""Messages a second all tabs of one user may send together in this process."""
CHAT_RATE, CHAT_BURST = 3.0, 10.0
"""Chat messages a second one user may send (people type slower)."""
FIELD_RATE, FIELD_BURST = 10.0, 20.0
"""Focus, blur and follow messages a second one user may send (each re-announces a
retained presence; tabbing through a form is a burst)."""
DEFAULT_REACTIONS_PER_SECOND = 20
HISTORY_THREADS = 4
"""Threads that read and write chat history for tabs (the store runs one call at a time;
more threads only let a slow call not hold up the event loop's others)."""
STOP_WAIT = 5.0
"""Seconds a shutdown waits for chat messages being stored to finish."""
NotSent = Literal["unavailable", "too_fast", "unstorable", "room"]
"""Why a chat message was neither stored nor published. A chat_ack says it in English
words too (the widgets' table, not_sent_<reason>), for other clients; the widgets word
the reason in their page's language."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RoomReactions:
    """What the app file says of reactions in a room."""

    emojis: frozenset[str]
    per_second: int = DEFAULT_REACTIONS_PER_SECOND


@dataclass(eq=False)
class UserBudget:
    """What all tabs of one user in this process may send together."""

    messages: TokenBucket = field(default_factory=lambda: TokenBucket(rate=USER_RATE, burst=USER_BURST))
    chats: TokenBucket = field(default_factory=lambda: TokenBucket(rate=CHAT_RATE, burst=CHAT_BURST))
    fields: TokenBucket = field(default_factory=lambda: TokenBucket(rate=FIELD_RATE, burst=FIELD_BURST))
    reactions: dict[str, TokenBucket] = field(default_factory=dict)
    """Per room: reaction clicks a second, spent by each burst's count."""


@dataclass(eq=False)
class Slot:
    """A device and the tab that currently holds it (None during the leave grace)."""

    device: Device
    tab: Tab | None
    leaving: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """What a tab's tokens allow together."""

    claims: Claims
    rooms: frozenset[str]
    every: tuple[Claims, ...]


class TabHub:
    def __init__(
        self,
        session: PresenceSession,
        *,
        signer: TokenSigner,
        leave_grace: float,
        limits: AdmissionLimits = AdmissionLimits(),
        private_receipt_rooms: frozenset[str | None] = frozenset(),
        reactions: dict[str | None, RoomReactions] | None = None,
        avatar_hosts: frozenset[str] = frozenset(),
        location_rooms: frozenset[str] = frozenset(),
    ) -> None:
        """`private_receipt_rooms` and `reactions` may hold None: what applies to rooms
        chosen at run time. `location_rooms`: rooms whose edited fields the org's presence
        list may name (TabEncoder)."""
        self.session = session
        self.signer = signer
        self.leave_grace = leave_grace
        self.limits = limits
        self.private_receipt_rooms = private_receipt_rooms
        self.reactions = reactions or {}
        self.counts: Counter[str] = Counter()
        """Why messages, frames and sockets were refused or dropped (the health route's)."""
        self.fanout = Fanout(
            encoder=TabEncoder(avatar_hosts=avatar_hosts, location_rooms=location_rooms),
            room_state=self._room_state,
            history=HistorySource(read=session.history, recent=self._recent_messages, submit=self._submit),
            count=lambda reason: self.counts.update((reason,)),  # a bare string would count its letters
            timers=asyncio.get_running_loop(),
        )
        self._history_io = ThreadPoolExecutor(max_workers=HISTORY_THREADS, thread_name_prefix="presence-history-io")
        self._chat_turns: weakref.WeakKeyDictionary[Device, asyncio.Lock] = weakref.WeakKeyDictionary()
        """Per device: its tab's chat messages are stored and published one at a time."""
        self._background: set[asyncio.Task[None]] = set()
        self._slots: dict[str, dict[str, Slot]] = {}
        """user -> device -> slot"""
        self._budgets: dict[str, UserBudget] = {}
        self._tabs: set[Tab] = set()
        self._addresses = AddressCounter()
        self._bindings = TokenBindings()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe = None
        self._tasks: list[asyncio.Task[None]] = []
        self._broker_state: dict[str, object] = {}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.session.subscribe(self._from_session_thread)
        self._tasks = [
            asyncio.create_task(self._every(PRESENCE_TICK, self.fanout.presence_tick)),
            asyncio.create_task(self._broker_watch()),
        ]

    async def stop(self) -> None:
        """Server shutdown: chat messages being stored finish (within STOP_WAIT), then
        every device leaves cleanly (explicit offline)."""
        for task in self._tasks:
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._background:
            await asyncio.wait(set(self._background), timeout=STOP_WAIT)
        slots = [slot for held in self._slots.values() for slot in held.values()]
        self._slots.clear()
        await asyncio.gather(*(asyncio.to_thread(slot.device.close) for slot in slots))
        self._history_io.shutdown(wait=False, cancel_futures=True)

    async def _every(self, period: float, tick) -> None:  # noqa: ANN001
        while True:
            await asyncio.sleep(period)
            try:
                tick()
            except Exception:  # noqa: BLE001 - one bad tick must not end the next
                self.counts["fanout_failed"] += 1
                log.exception("a tick failed")

    def _room_state(self, room: str) -> RoomSnapshot | None:
        return self.session.room_snapshot(room) if self.session.room_ready(room) else None

    def _recent_messages(self, room: str) -> tuple[ChatMessage, ...]:
        state = self.session.room_snapshot(room)
        return state.messages if state is not None else ()

    # -- blocking work, off the event loop -----------------------------------------------
    async def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._history_io, functools.partial(work, *args))

    def _submit(self, work: Callable[[], Any], done: Done) -> None:
        """Run `work` on a history thread, then `done(result, error)` on the event loop."""

        async def run() -> None:
            try:
                result = await self._in_thread(work)
            except Exception as exc:  # noqa: BLE001 - handed to `done`, which says what failed
                done(None, exc)
                return
            done(result, None)

        self._spawn(run())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine of the hub's; kept until it ends (the loop holds tasks weakly)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.counts["handler_failed"] += 1
            log.error("a tab's background work failed: %s", error, exc_info=error)

    # -- one tab -------------------------------------------------------------------------
    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not origin_allowed(websocket.headers.get("origin"), host=websocket.headers.get("host"), allowed=self.limits.allowed_origins):
            await self._refuse(websocket, CLOSE_BAD_ORIGIN, "this page's origin may not connect", "bad_origin")
            return
        address = websocket.client.host if websocket.client else "?"
        if not self._addresses.open(address, limit=self.limits.sockets_per_address):
            await self._refuse(websocket, CLOSE_TOO_MANY_SOCKETS, f"more than {self.limits.sockets_per_address} connections from this address", "address_cap")
            return
        try:
            await self._serve_admitted(websocket)
        finally:
            self._addresses.close(address)

    async def _serve_admitted(self, websocket: WebSocket) -> None:
        try:
            hello = decode("tab-message", (await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT)).encode())
            if hello["t"] != "hello":
                raise InvalidPayload("the first message must be a hello")
            device_id = check_id(hello["device"], kind="device")
            grant = self._grant(hello["tokens"], device_id)
        except (InvalidToken, InvalidId, InvalidPayload, asyncio.TimeoutError) as exc:
            bad_token = isinstance(exc, InvalidToken)
            await self._refuse(websocket, CLOSE_BAD_TOKEN if bad_token else CLOSE_BAD_REQUEST, str(exc) or "no hello", "bad_token" if bad_token else "bad_request")
            return
        except (WebSocketDisconnect, RuntimeError):
            return  # gone before saying hello
        tab = Tab(websocket, grant.claims, device_id, grant.rooms, asked=Watch.from_message(hello["watch"]))
        watch, refused = self._allowed(tab, tab.asked)
        slot = self._attach(tab, watch)
        if slot is None:
            await websocket.close(code=CLOSE_DEVICE_TAKEN, reason="device id is live in another tab")
            return
        if isinstance(slot, int):
            await self._refuse(websocket, CLOSE_TOO_MANY_DEVICES, f"more than {slot} live devices for this user", "device_cap")
            return
        self._bind(grant, device_id)
        writer = asyncio.create_task(self._write(tab))
        try:
            c = grant.claims
            tab.queue.put_nowait(dumps({"t": "welcome", "user": c.user, "device": device_id, "name": c.name, "epoch": slot.device.epoch}))
            self._say_refused(tab, refused)
            tab.queue.put_nowait(dumps({"t": "broker", **self._broker()}))
            tab.watch = watch
            self.fanout.add(tab)
            self._tabs.add(tab)
            refresh = asyncio.create_task(self._refresh_token(tab))
            try:
                while True:
                    self._handle_safely(tab, slot.device, await websocket.receive_text())
            finally:
                refresh.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass  # the tab went away; RuntimeError: the socket was closed under us
        finally:
            self._tabs.discard(tab)
            self.fanout.remove(tab)
            tab.queue.put_nowait(None)
            writer.cancel()
            self._detach(tab, slot)

    def _grant(self, tokens: list[str], device: str) -> Grant:
        """Verify a tab's tokens: every one signed by us, of one user and this org, and
        allowed to open `device`; expired ones are passed over (a reconnecting tab still
        holds its page's first tokens), but one at least must be valid."""
        valid: list[Claims] = []
        for token in tokens:
            try:
                claims = self.signer.verify(token)
            except TokenExpired:
                continue
            if claims.org != self.session.org:
                raise InvalidToken("token is for another org")
            if valid and claims.user != valid[0].user:
                raise InvalidToken("tokens of two users")
            if not self._bindings.allows(claims, device, now=time.time()):
                raise InvalidToken("token is bound to another device")
            valid.append(claims)
        if not valid:
            raise TokenExpired("every token has expired")
        return Grant(valid[0], frozenset().union(*(c.rooms for c in valid)), tuple(valid))

    def _bind(self, grant: Grant, device: str) -> None:
        for claims in grant.every:
            self._bindings.bind(claims, device, now=time.time())

    def _allowed(self, tab: Tab, watch: Watch) -> tuple[Watch, frozenset[str]]:
        """`watch` without the rooms the tab was not given, and those rooms."""
        refused = watch.rooms_shown() - tab.rooms
        if not refused:
            return watch, refused
        allowed = Watch(
            frozenset(view for view in watch.views if view[0] is None or view[0] in tab.rooms),
            {room: parts for room, parts in watch.rooms.items() if room in tab.rooms},
            {room: count for room, count in watch.history.items() if room in tab.rooms},
        )
        return allowed, refused

    def _say_refused(self, tab: Tab, rooms: frozenset[str]) -> None:
        for room in sorted(rooms):
            self._refused(tab, "room")
            tab.queue.put_nowait(dumps({"t": "refused", "room": room, "reason": "this page was not given that room"}))

    def _show(self, tab: Tab, device: Device, asked: Watch) -> None:
        """The tab asks to be shown `asked` (a watch, or its last one after new tokens)."""
        tab.asked = asked
        watch, refused = self._allowed(tab, asked)
        self._say_refused(tab, refused)
        if watch != tab.watch:
            self.fanout.show(tab, watch, previous=tab.watch)
            device.set_rooms(tuple(sorted(watch.rooms_shown())))
            self._leave_fields_not_shown(device, watch)

    async def _refuse(self, websocket: WebSocket, code: int, reason: str, count: str) -> None:
        self.counts[count] += 1
        try:
            await websocket.close(code=code, reason=reason[:120])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # already gone

    def _attach(self, tab: Tab, watch: Watch) -> Slot | int | None:
        """The tab's slot; None when its device is live in another tab, or the device cap
        (an int) when the user holds that many devices already."""
        c = tab.claims
        held = self._slots.setdefault(c.user, {})
        slot = held.get(tab.device_id)
        if slot is not None and slot.tab is not None:
            return None  # a duplicated tab: it must take a device id of its own
        if slot is not None:  # came back within the grace: adopt the live device
            if slot.leaving is not None:
                slot.leaving.cancel()
            slot.leaving, slot.tab = None, tab
            slot.device.set_rooms(tuple(sorted(watch.rooms_shown())))
            self._leave_fields_not_shown(slot.device, watch)
            return slot
        if len(held) >= self.limits.devices_per_user:
            return self.limits.devices_per_user
        device = self.session.open_device(user=c.user, device=tab.device_id, name=c.name, avatar=c.avatar, rooms=sorted(watch.rooms_shown()))
        slot = held[tab.device_id] = Slot(device, tab)
        self._budgets.setdefault(c.user, UserBudget())
        return slot

    def _detach(self, tab: Tab, slot: Slot) -> None:
        if slot.tab is not tab:
            return
        slot.tab = None
        assert self._loop is not None
        left_at = time.time()
        slot.leaving = self._loop.call_later(self.leave_grace, lambda: asyncio.ensure_future(self._leave(slot, left_at)))

    async def _leave(self, slot: Slot, left_at: float) -> None:
        """The grace is over and nobody adopted the device: it leaves, last seen when its
        tab went (not now, a grace later)."""
        if slot.tab is not None:
            return  # adopted meanwhile
        user, device = slot.device.user, slot.device.device
        held = self._slots.get(user, {})
        if held.get(device) is slot:
            del held[device]
        if not held:
            self._slots.pop(user, None)
            self._budgets.pop(user, None)
        await asyncio.to_thread(slot.device.close, left_at=left_at)

    # -- what a tab sends ----------------------------------------------------------------
    def _handle_safely(self, tab: Tab, device: Device, text: str) -> None:
        try:
            self._handle(tab, device, text)
        except Exception:  # noqa: BLE001 - one bad message costs at most itself
            self.counts["handler_failed"] += 1
            log.exception("a message from %s/%s could not be handled", tab.claims.user, tab.device_id)

    def _handle(self, tab: Tab, device: Device, text: str) -> None:
        budget = self._budgets[tab.claims.user]
        if not tab.inbound.take() or not budget.messages.take():
            self._refused(tab, "flood")
            return
        try:
            msg = decode("tab-message", text.encode())
        except InvalidPayload as exc:
            self._refused(tab, "invalid")
            log.debug("refused a message from %s/%s: %s", tab.claims.user, tab.device_id, exc)
            return
        kind = msg["t"]
        room = msg.get("room")
        if kind == "hello" or (room is not None and room not in tab.rooms):
            self._refused(tab, "room" if room is not None else "invalid")
            if kind == "chat":
                self._not_sent(tab, room, msg.get("nonce"), "room")
            return
        if kind == "watch":
            self._show(tab, device, Watch.from_message(msg))
        elif kind == "auth":
            self._reauthorise(tab, device, msg["tokens"])
        elif kind == "activity":
            now = time.time()
            # no input can have stopped before the page was rendered, nor in the future
            since = min(max(msg.get("since", now), tab.claims.issued), now) if msg["status"] == "away" else None
            device.set_status(msg["status"], since=since)
        elif kind == "typing":
            device.typing(room, active=msg["active"], ttl=msg.get("ttl", DEFAULT_TYPING_TTL))
        elif kind == "cursor":
            device.move_cursor(room, msg["x"], msg["y"], region=msg.get("region"), visible=msg.get("visible", True))
        elif kind == "chat":
            if budget.chats.take():
                self._spawn(self._send_chat(tab, device, room, msg["text"], msg.get("nonce")))
            else:
                self._refused(tab, "flood")
                self._not_sent(tab, room, msg.get("nonce"), "too_fast")
        elif kind == "read":
            if not self._private_receipts(room):
                self._mark_read(device, room, msg["id"])
        elif kind == "earlier":
            if "chat" in tab.watch.rooms.get(room, ()):
                self.fanout.history.earlier(tab, room, msg["before"], msg.get("limit", PAGE))
            else:
                self._refused(tab, "room")
        elif kind == "react":
            count = self._allowed_reactions(tab, budget, room, msg["emoji"], msg.get("count", 1))
            if count:
                device.react(room, msg["emoji"], count=count)
        elif kind in ("focus", "blur", "follow", "followable"):
            self._fields(tab, budget, device, msg)

    def _fields(self, tab: Tab, budget: UserBudget, device: Device, msg: dict) -> None:
        """Where the tab's person is: the field they edit, whom they follow."""
        kind, room = msg["t"], msg.get("room")
        if room is not None and "fields" not in tab.watch.rooms.get(room, ()):
            self._refused(tab, "room")  # a room whose fields this tab does not show
        elif not budget.fields.take():
            self._refused(tab, "flood")
        elif kind == "focus":
            device.focus(room, msg["field"], label=msg.get("label"), lock=msg.get("lock", False))
        elif kind == "blur":
            device.blur()
        elif kind == "follow":
            device.follow(room, msg.get("user"))
        else:
            device.set_followable(msg["followable"])

    @staticmethod
    def _leave_fields_not_shown(device: Device, watch: Watch) -> None:
        """A device edits and follows only where its tab shows the fields."""
        focus = device.focused
        if focus is not None and "fields" not in watch.rooms.get(focus.room, ()):
            device.blur()
        following = device.following
        if following is not None and "fields" not in watch.rooms.get(following, ()):
            device.follow(following, None)

    async def _send_chat(self, tab: Tab, device: Device, room: str, text: str, nonce: str | None) -> None:
        """Store (when the session has a store) and publish one message of a tab, after
        the ones it sent before; answer the tab when it gave a nonce."""
        async with self._chat_turns.setdefault(device, asyncio.Lock()):
            try:
                message = await self._in_thread(device.send_chat, room, text)
            except HistoryUnavailable:
                self.counts["chat_not_stored"] += 1  # the store logged the outage once
                self._not_sent(tab, room, nonce, "unavailable")
            except ValueError as exc:  # text the store refuses (NUL, say): InvalidId and InvalidPayload are ValueErrors too
                self._refused(tab, "invalid")
                log.debug("a chat message from %s/%s was not stored: %s", tab.claims.user, tab.device_id, exc)
                self._not_sent(tab, room, nonce, "unstorable")
            else:
                self._chat_ack(tab, room, nonce, id=message.id, stored=self.session.history_store is not None)

    def _chat_ack(self, tab: Tab, room: str, nonce: str | None, **answer: object) -> None:
        if nonce is not None:
            tab.queue.put_nowait(dumps({"t": "chat_ack", "room": room, "nonce": nonce, **answer}))

    def _not_sent(self, tab: Tab, room: str, nonce: str | None, reason: NotSent) -> None:
        """Answer a chat message that was neither stored nor published: why, as a reason
        and in words."""
        self._chat_ack(tab, room, nonce, error=language_tables()[REFERENCE][f"not_sent_{reason}"], reason=reason)

    def _mark_read(self, device: Device, room: str, message_id: str) -> None:
        """A receipt only for a message the kit knows: held in memory, else in the store."""
        message = self.session.find_message(room, message_id)
        if message is not None:
            device.mark_read(room, message)
        elif self.session.history_store is not None:
            self._spawn(self._mark_stored_read(device, room, message_id))

    async def _mark_stored_read(self, device: Device, room: str, message_id: str) -> None:
        try:
            message = await self._in_thread(self.session.stored_message, room, message_id)
        except HistoryUnavailable:
            self.counts["receipt_unchecked"] += 1
            return
        if message is None:
            self.counts["unknown_message"] += 1
        else:
            device.mark_read(room, message)

    def _reauthorise(self, tab: Tab, device: Device, tokens: list[str]) -> None:
        """The page was rendered again (a rerun, a room chosen anew): its new tokens
        replace the old, and what the tab shows is held to what they grant."""
        try:
            grant = self._grant(tokens, tab.device_id)
        except InvalidToken:
            self._refused(tab, "bad_token")
            return
        if grant.claims.user != tab.claims.user:
            self._refused(tab, "bad_token")
            return
        self._bind(grant, tab.device_id)
        tab.claims, tab.rooms = grant.claims, grant.rooms
        self._show(tab, device, tab.asked)

    def _refused(self, tab: Tab, why: str) -> None:
        tab.refused += 1
        self.counts[why] += 1

    def _private_receipts(self, room: str) -> bool:
        return room in self.private_receipt_rooms or (None in self.private_receipt_rooms and room not in self.session.rooms)

    def _room_reactions(self, room: str) -> RoomReactions | None:
        return self.reactions.get(room) or (self.reactions.get(None) if room not in self.session.rooms else None)

    def _allowed_reactions(self, tab: Tab, budget: UserBudget, room: str, emoji: str, count: int) -> int:
        """Only the room's emojis; a user's clicks are capped at the room's per_second
        across all their tabs: a burst larger than what is left is cut down to it."""
        config = self._room_reactions(room)
        if config is None or emoji not in config.emojis:
            self._refused(tab, "emoji")
            return 0
        bucket = budget.reactions.setdefault(room, TokenBucket(rate=config.per_second, burst=config.per_second))
        allowed = min(count, int(bucket.available()))
        if allowed and bucket.take(allowed):
            return allowed
        self._refused(tab, "flood")
        return 0

    # -- the session's events -----------------------------------------------------------------
    def _from_session_thread(self, event: Event) -> None:
        """Session listener (dispatcher thread): hop onto the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        try:
            if isinstance(event, ReactionReceived) and event.emoji not in getattr(self._room_reactions(event.room), "emojis", ()):
                self.counts["emoji"] += 1  # from a client that is not one of our tabs
                return
            self.fanout.handle(event)
        except Exception:  # noqa: BLE001 - one bad event must not stop the next
            self.counts["fanout_failed"] += 1
            log.exception("could not fan out %s", type(event).__name__)

    async def _write(self, tab: Tab) -> None:
        """Send the tab's messages in order until the tab goes. Messages queued together
        go out as one frame, a JSON array (see WRITE_BATCH). A frame that cannot be sent
        (it should never happen: what enters the kit is checked) is dropped and counted;
        the frames after it still go out."""
        closing = False
        while not closing and (text := await tab.queue.get()) is not None:
            batch = [text]
            while len(batch) < WRITE_BATCH and not tab.queue.empty():
                more = tab.queue.get_nowait()
                if more is None:
                    closing = True
                    break
                batch.append(more)
            try:
                await tab.websocket.send_text(batch[0] if len(batch) == 1 else f"[{','.join(batch)}]")
            except (WebSocketDisconnect, RuntimeError, OSError):
                return  # the socket is gone; serve() cleans up
            except Exception:  # noqa: BLE001 - never let one frame end the writer
                self.counts["send_failed"] += 1
                log.exception("dropped a frame for %s/%s", tab.claims.user, tab.device_id)
                continue
            self.fanout.frames_sent += 1

    async def _refresh_token(self, tab: Tab) -> None:
        while True:
            await asyncio.sleep(self.signer.ttl / 2)
            tab.queue.put_nowait(dumps({"t": "token", "token": self.signer.refresh(tab.claims, device=tab.device_id, rooms=tab.rooms)}))

    # -- broker status -------------------------------------------------------------------------
    def _broker(self) -> dict[str, object]:
        stats = self.session.stats()
        return {"connected": stats.connected, "error": stats.last_error, "url": stats.broker}

    async def _broker_watch(self) -> None:
        while True:
            state = self._broker()
            if state != self._broker_state:
                self._broker_state = state
                self.fanout.broadcast_all({"t": "broker", **state})
            await asyncio.sleep(0.5)

    # -- health ------------------------------------------------------------------------------------
    @property
    def tab_count(self) -> int:
        return len(self._tabs)

    @property
    def device_count(self) -> int:
        return sum(map(len, self._slots.values()))

    async def health(self, request: Request) -> JSONResponse:
        stats = self.session.stats()
        body = {
            "broker": {"url": stats.broker, "connected": stats.connected, "synced": stats.synced, "last_error": stats.last_error},
            "users": stats.users,
            "tabs": self.tab_count,
            "devices": self.device_count,
            "rooms": sorted(self.session.watched_rooms()),
            "frames_sent": self.fanout.frames_sent,
            "mqtt_connections": stats.connections,
            "received": stats.received,
            "invalid": stats.invalid,
            "refused": stats.refused,
            "listener_errors": stats.listener_errors,
            "tab_refusals": dict(self.counts),
            "history": asdict(stats.history) if stats.history is not None else None,
        }
        return JSONResponse(body, status_code=200 if stats.connected else 503)
