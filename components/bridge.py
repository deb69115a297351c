"""The real-time bridge: one WebSocket per browser tab on the Streamlit server itself,
between the tab and the process's shared session.

- A tab connects to `/presence-kit/ws` and its first frame is `{"t": "hello", "token": T,
  "device": D}` (never in the URL, where logs and Referers keep it). The signed token
  (minted by the page for the identified user) says who the tab is; D is the tab's
  device id, kept in sessionStorage so a reload keeps it. What may connect, and how
  many, is checked first (components/tab_admission.py): the page's Origin, sockets per
  client address, the token (forged, expired, other org, or bound to another device:
  4401), live devices per user (4429); a device id already live in another tab is
  refused (4409) and the tab takes a new one.
- Each tab is a device with its own will-carrying MQTT connection, opened when its
  socket opens. When the socket closes the device is kept for the leave grace; a socket
  that comes back with the same device id in time adopts it (no offline, no flicker),
  otherwise the device leaves cleanly (explicit offline). The grace is applied here, once.
- Liveness is the WebSocket itself: uvicorn pings every tab at the protocol level
  (`server.websocketPingInterval`), so a background tab whose timers are throttled is
  not taken for dead, and a tab whose network vanished is.
- The tab gets a snapshot from the shared session at once, then deltas; cursor moves
  are batched per tick into one frame per tab. Nothing goes through Streamlit reruns.
- Inbound messages are validated against schemas/tab-message.schema.json and rate
  limited per tab and per user (all of a user's tabs together); a flood's excess is
  dropped and counted. Reactions must be among the room's configured emojis.
- One bad message costs at most itself, one bad tab at most itself: a message that
  cannot be handled, serialised or sent is dropped, logged and counted (the health
  route shows the counts), and every other tab keeps receiving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from .device import Device
from .errors import InvalidId, InvalidPayload, InvalidToken
from .events import CursorMoved, Event, ReactionReceived, Snapshot
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
from .tab_protocol import TabEncoder, dumps
from .tokens import Claims, TokenSigner

log = logging.getLogger(__name__)

WS_PATH = "/presence-kit/ws"
HEALTH_PATH = "/presence-kit/health"
CURSOR_TICK = 0.05
"""Cursor frames go out at most every 50 ms (20 Hz), all moves of a tick in one frame."""
TAB_QUEUE_LIMIT = 2000
"""A tab this far behind is disconnected; it reconnects and gets a fresh snapshot."""
HELLO_TIMEOUT = 5.0
"""Seconds a new socket has to send its hello frame."""
INBOUND_RATE, INBOUND_BURST = 40.0, 80.0
"""Messages a second a tab may send (cursor 20 Hz + typing + chat), and its burst."""
USER_RATE, USER_BURST = 80.0, 160.0
"""Messages a second all tabs of one user may send together in this process."""
CHAT_RATE, CHAT_BURST = 3.0, 10.0
"""Chat messages a second one user may send (people type slower)."""
DEFAULT_REACTIONS_PER_SECOND = 20


@dataclass(frozen=True, slots=True)
class RoomReactions:
    """What the app file says of reactions in a room."""

    emojis: frozenset[str]
    per_second: int = DEFAULT_REACTIONS_PER_SECOND


@dataclass(eq=False)
class Tab:
    websocket: WebSocket
    claims: Claims
    device_id: str
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    inbound: TokenBucket = field(default_factory=lambda: TokenBucket(rate=INBOUND_RATE, burst=INBOUND_BURST))
    refused: int = 0


@dataclass(eq=False)
class UserBudget:
    """What all tabs of one user in this process may send together."""

    messages: TokenBucket = field(default_factory=lambda: TokenBucket(rate=USER_RATE, burst=USER_BURST))
    chats: TokenBucket = field(default_factory=lambda: TokenBucket(rate=CHAT_RATE, burst=CHAT_BURST))
    reactions: dict[str, TokenBucket] = field(default_factory=dict)
    """Per room: reaction clicks a second, spent by each burst's count."""


@dataclass(eq=False)
class Slot:
    """A device and the tab that currently holds it (None during the leave grace)."""

    device: Device
    tab: Tab | None
    leaving: asyncio.TimerHandle | None = None


class TabHub:
    def __init__(
        self,
        session: PresenceSession,
        *,
        signer: TokenSigner,
        leave_grace: float,
        limits: AdmissionLimits = AdmissionLimits(),
        private_receipt_rooms: frozenset[str] = frozenset(),
        reactions: dict[str, RoomReactions] | None = None,
        avatar_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.session = session
        self.signer = signer
        self.leave_grace = leave_grace
        self.limits = limits
        self.private_receipt_rooms = private_receipt_rooms
        self.reactions = reactions or {}
        self.encoder = TabEncoder(avatar_hosts=avatar_hosts)
        self._slots: dict[str, dict[str, Slot]] = {}
        """user -> device -> slot"""
        self._budgets: dict[str, UserBudget] = {}
        self._tabs: set[Tab] = set()
        self._addresses = AddressCounter()
        self._bindings = TokenBindings()
        self._cursor_moves: dict[str, dict[tuple[str, str], list[Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._broker_state: dict[str, Any] = {}
        self.frames_sent = 0
        self.counts: Counter[str] = Counter()
        """Why messages, frames and sockets were refused or dropped (the health route's)."""

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.session.subscribe(self._from_session_thread)
        self._tasks = [asyncio.create_task(self._cursor_ticker()), asyncio.create_task(self._broker_watch())]

    async def stop(self) -> None:
        """Server shutdown: every device leaves cleanly (explicit offline)."""
        for task in self._tasks:
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        slots = [slot for held in self._slots.values() for slot in held.values()]
        self._slots.clear()
        await asyncio.gather(*(asyncio.to_thread(slot.device.close) for slot in slots))

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
            claims = self.signer.verify(hello["token"])
            if claims.org != self.session.org:
                raise InvalidToken("token is for another org")
            device_id = check_id(hello["device"], kind="device")
            if not self._bindings.allows(claims, device_id, now=time.time()):
                raise InvalidToken("token is bound to another device")
        except (InvalidToken, InvalidId, InvalidPayload, asyncio.TimeoutError) as exc:
            bad_token = isinstance(exc, InvalidToken)
            await self._refuse(websocket, CLOSE_BAD_TOKEN if bad_token else CLOSE_BAD_REQUEST, str(exc) or "no hello", "bad_token" if bad_token else "bad_request")
            return
        except (WebSocketDisconnect, RuntimeError):
            return  # gone before saying hello
        tab = Tab(websocket, claims, device_id)
        slot = self._attach(tab)
        if slot is None:
            await websocket.close(code=CLOSE_DEVICE_TAKEN, reason="device id is live in another tab")
            return
        if isinstance(slot, int):
            await self._refuse(websocket, CLOSE_TOO_MANY_DEVICES, f"more than {slot} live devices for this user", "device_cap")
            return
        self._bindings.bind(claims, device_id, now=time.time())
        writer = asyncio.create_task(self._write(tab))
        try:
            self._send(tab, {"t": "welcome", "user": claims.user, "device": device_id, "name": claims.name, "epoch": slot.device.epoch})
            self._send(tab, self.encoder.snapshot(self.session.snapshot(), broker=self._broker()))
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
            tab.queue.put_nowait(None)
            writer.cancel()
            self._detach(tab, slot)

    async def _refuse(self, websocket: WebSocket, code: int, reason: str, count: str) -> None:
        self.counts[count] += 1
        try:
            await websocket.close(code=code, reason=reason[:120])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # already gone

    def _attach(self, tab: Tab) -> Slot | int | None:
        """The tab's slot; None when its device is live in another tab, or the device cap
        (an int) when the user holds that many devices already."""
        held = self._slots.setdefault(tab.claims.user, {})
        slot = held.get(tab.device_id)
        if slot is not None and slot.tab is not None:
            return None  # a duplicated tab: it must take a device id of its own
        if slot is not None:  # came back within the grace: adopt the live device
            if slot.leaving is not None:
                slot.leaving.cancel()
            slot.leaving, slot.tab = None, tab
            return slot
        if len(held) >= self.limits.devices_per_user:
            return self.limits.devices_per_user
        c = tab.claims
        device = self.session.open_device(user=c.user, device=tab.device_id, name=c.name, avatar=c.avatar)
        slot = held[tab.device_id] = Slot(device, tab)
        self._budgets.setdefault(c.user, UserBudget())
        return slot

    def _detach(self, tab: Tab, slot: Slot) -> None:
        if slot.tab is not tab:
            return
        slot.tab = None
        assert self._loop is not None
        slot.leaving = self._loop.call_later(self.leave_grace, lambda: asyncio.ensure_future(self._leave(slot)))

    async def _leave(self, slot: Slot) -> None:
        if slot.tab is not None:
            return  # adopted meanwhile
        user, device = slot.device.user, slot.device.device
        held = self._slots.get(user, {})
        if held.get(device) is slot:
            del held[device]
        if not held:
            self._slots.pop(user, None)
            self._budgets.pop(user, None)
        await asyncio.to_thread(slot.device.close)

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
        if kind == "hello" or (room is not None and room not in self.session.rooms):
            self._refused(tab, "invalid")
            return
        if kind == "activity":
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
                device.send_chat(room, msg["text"])
            else:
                self._refused(tab, "flood")
        elif kind == "read":
            message = self.session.find_message(room, msg["id"])
            if room not in self.private_receipt_rooms and message is not None:
                device.mark_read(room, message)
        elif kind == "react":
            count = self._allowed_reactions(tab, budget, room, msg["emoji"], msg.get("count", 1))
            if count:
                device.react(room, msg["emoji"], count=count)

    def _refused(self, tab: Tab, why: str) -> None:
        tab.refused += 1
        self.counts[why] += 1

    def _allowed_reactions(self, tab: Tab, budget: UserBudget, room: str, emoji: str, count: int) -> int:
        """Only the room's emojis; a user's clicks are capped at the room's per_second
        across all their tabs: a burst larger than what is left is cut down to it."""
        config = self.reactions.get(room)
        if config is None or emoji not in config.emojis:
            self._refused(tab, "emoji")
            return 0
        bucket = budget.reactions.setdefault(room, TokenBucket(rate=config.per_second, burst=config.per_second))
        allowed = min(count, int(bucket.available()))
        if allowed and bucket.take(allowed):
            return allowed
        self._refused(tab, "flood")
        return 0

    # -- fan-out ---------------------------------------------------------------------------
    def _from_session_thread(self, event: Event) -> None:
        """Session listener (dispatcher thread): hop onto the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        try:
            self._fan_out_unsafe(event)
        except Exception:  # noqa: BLE001 - one bad event must not stop the next
            self.counts["fanout_failed"] += 1
            log.exception("could not fan out %s", type(event).__name__)

    def _fan_out_unsafe(self, event: Event) -> None:
        if isinstance(event, Snapshot):  # the observer resynced: every tab replaces its state
            self._broadcast(dumps(self.encoder.snapshot(event, broker=self._broker())))
            return
        if isinstance(event, CursorMoved):
            self._cursor_moves.setdefault(event.room, {})[(event.user, event.device)] = self.encoder.cursor_move(event)
            return
        if isinstance(event, ReactionReceived) and event.emoji not in self.reactions.get(event.room, RoomReactions(frozenset())).emojis:
            self.counts["emoji"] += 1  # from a client that is not one of our tabs
            return
        message = self.encoder.event(event)
        if message is not None:
            self._broadcast(dumps(message))

    def _broadcast(self, text: str) -> None:
        for tab in list(self._tabs):
            self._enqueue(tab, text)

    async def _cursor_ticker(self) -> None:
        while True:
            await asyncio.sleep(CURSOR_TICK)
            if not self._cursor_moves:
                continue
            moves, self._cursor_moves = self._cursor_moves, {}
            for room, batch in moves.items():
                self._broadcast(dumps({"t": "cursors", "room": room, "moves": list(batch.values())}))

    def _send(self, tab: Tab, message: dict[str, Any]) -> None:
        self._enqueue(tab, dumps(message))

    def _enqueue(self, tab: Tab, text: str) -> None:
        if tab.queue.qsize() >= TAB_QUEUE_LIMIT:
            log.warning("tab %s/%s is %d messages behind; disconnecting it", tab.claims.user, tab.device_id, TAB_QUEUE_LIMIT)
            self.counts["too_far_behind"] += 1
            asyncio.ensure_future(tab.websocket.close(code=1013, reason="too far behind"))
            return
        tab.queue.put_nowait(text)

    async def _write(self, tab: Tab) -> None:
        """Send the tab's frames in order until the tab goes. A frame that cannot be sent
        (it should never happen: what enters the kit is checked) is dropped and counted;
        the frames after it still go out."""
        while (text := await tab.queue.get()) is not None:
            try:
                await tab.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return  # the socket is gone; serve() cleans up
            except Exception:  # noqa: BLE001 - never let one frame end the writer
                self.counts["send_failed"] += 1
                log.exception("dropped a frame for %s/%s", tab.claims.user, tab.device_id)
                continue
            self.frames_sent += 1

    async def _refresh_token(self, tab: Tab) -> None:
        while True:
            await asyncio.sleep(self.signer.ttl / 2)
            self._send(tab, {"t": "token", "token": self.signer.refresh(tab.claims, device=tab.device_id)})

    # -- broker status -------------------------------------------------------------------------
    def _broker(self) -> dict[str, Any]:
        stats = self.session.stats()
        return {"connected": stats.connected, "error": stats.last_error, "url": stats.broker}

    async def _broker_watch(self) -> None:
        while True:
            state = self._broker()
            if state != self._broker_state:
                self._broker_state = state
                self._broadcast(dumps({"t": "broker", **state}))
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
            "tabs": self.tab_count,
            "devices": self.device_count,
            "frames_sent": self.frames_sent,
            "mqtt_connections": stats.connections,
            "received": stats.received,
            "invalid": stats.invalid,
            "refused": stats.refused,
            "listener_errors": stats.listener_errors,
            "tab_refusals": dict(self.counts),
        }
        return JSONResponse(body, status_code=200 if stats.connected else 503)
