"""The real-time bridge: one WebSocket per browser tab on the Streamlit server itself,
between the tab and the process's shared session.

- A tab connects to `/presence-kit/ws?token=T&device=D`. The signed token (minted by the
  page for the identified user) says who the tab is; D is the tab's device id, kept in
  sessionStorage so a reload keeps it. Forged or expired tokens are refused (4401); a
  device id already live in another tab is refused (4409) and the tab takes a new one.
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
  limited per tab; a flooding tab's excess is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .device import Device
from .errors import InvalidId, InvalidPayload
from .events import CursorMoved, Event, Snapshot
from .ids import check_id
from .payloads import decode
from .rate_limit import TokenBucket
from .rooms import DEFAULT_TYPING_TTL
from .session import PresenceSession
from .tab_protocol import cursor_move, dumps, event_message, snapshot_message
from .tokens import Claims, InvalidToken, TokenSigner

log = logging.getLogger(__name__)

WS_PATH = "/presence-kit/ws"
HEALTH_PATH = "/presence-kit/health"
CURSOR_TICK = 0.05
"""Cursor frames go out at most every 50 ms (20 Hz), all moves of a tick in one frame."""
TAB_QUEUE_LIMIT = 2000
"""A tab this far behind is disconnected; it reconnects and gets a fresh snapshot."""
INBOUND_RATE, INBOUND_BURST = 40.0, 80.0
"""Messages a second a tab may send (cursor 20 Hz + typing + chat), and its burst."""
CLOSE_BAD_TOKEN, CLOSE_BAD_REQUEST, CLOSE_DEVICE_TAKEN = 4401, 4400, 4409


@dataclass(eq=False)
class Tab:
    websocket: WebSocket
    claims: Claims
    device_id: str
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    inbound: TokenBucket = field(default_factory=lambda: TokenBucket(rate=INBOUND_RATE, burst=INBOUND_BURST))
    reactions: dict[str, TokenBucket] = field(default_factory=dict)
    """Per room: reaction clicks a second, spent by each burst's count."""
    refused: int = 0


@dataclass(eq=False)
class Slot:
    """A device and the tab that currently holds it (None during the leave grace)."""

    device: Device
    tab: Tab | None
    leaving: asyncio.TimerHandle | None = None


DEFAULT_REACTIONS_PER_SECOND = 20


class TabHub:
    def __init__(
        self,
        session: PresenceSession,
        *,
        signer: TokenSigner,
        leave_grace: float,
        private_receipt_rooms: frozenset[str] = frozenset(),
        reactions_per_second: dict[str, int] | None = None,
    ) -> None:
        self.session = session
        self.signer = signer
        self.leave_grace = leave_grace
        self.private_receipt_rooms = private_receipt_rooms
        self.reactions_per_second = reactions_per_second or {}
        self._slots: dict[tuple[str, str], Slot] = {}
        self._tabs: set[Tab] = set()
        self._cursor_moves: dict[str, dict[tuple[str, str], list[Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._broker_state: dict[str, Any] = {}
        self.frames_sent = 0

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
        slots = list(self._slots.values())
        self._slots.clear()
        await asyncio.gather(*(asyncio.to_thread(slot.device.close) for slot in slots))

    # -- one tab -------------------------------------------------------------------------
    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            claims = self.signer.verify(websocket.query_params.get("token", ""))
            if claims.org != self.session.org:
                raise InvalidToken("token is for another org")
            device_id = check_id(websocket.query_params.get("device", ""), kind="device")
        except (InvalidToken, InvalidId) as exc:
            code = CLOSE_BAD_TOKEN if isinstance(exc, InvalidToken) else CLOSE_BAD_REQUEST
            await websocket.close(code=code, reason=str(exc)[:120])
            return
        tab = Tab(websocket, claims, device_id)
        slot = self._attach(tab)
        if slot is None:
            await websocket.close(code=CLOSE_DEVICE_TAKEN, reason="device id is live in another tab")
            return
        writer = asyncio.create_task(self._write(tab))
        try:
            self._send(tab, {"t": "welcome", "user": claims.user, "device": device_id, "name": claims.name, "epoch": slot.device.epoch})
            self._send(tab, snapshot_message(self.session.snapshot(), broker=self._broker()))
            self._tabs.add(tab)
            refresh = asyncio.create_task(self._refresh_token(tab))
            try:
                while True:
                    self._handle(tab, slot.device, await websocket.receive_text())
            finally:
                refresh.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass  # the tab went away; RuntimeError: the socket was closed under us
        finally:
            self._tabs.discard(tab)
            tab.queue.put_nowait(None)
            writer.cancel()
            self._detach(tab, slot)

    def _attach(self, tab: Tab) -> Slot | None:
        key = (tab.claims.user, tab.device_id)
        slot = self._slots.get(key)
        if slot is not None and slot.tab is not None:
            return None  # a duplicated tab: it must take a device id of its own
        if slot is not None:  # came back within the grace: adopt the live device
            if slot.leaving is not None:
                slot.leaving.cancel()
            slot.leaving, slot.tab = None, tab
            return slot
        device = self.session.open_device(user=tab.claims.user, device=tab.device_id, name=tab.claims.name, avatar=tab.claims.avatar)
        slot = self._slots[key] = Slot(device, tab)
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
        key = (slot.device.user, slot.device.device)
        if self._slots.get(key) is slot:
            del self._slots[key]
        await asyncio.to_thread(slot.device.close)

    def _handle(self, tab: Tab, device: Device, text: str) -> None:
        if not tab.inbound.take():
            return  # flood: dropped and counted in the bucket
        try:
            msg = decode("tab-message", text.encode())
        except InvalidPayload as exc:
            tab.refused += 1
            log.debug("refused a message from %s/%s: %s", tab.claims.user, tab.device_id, exc)
            return
        kind = msg["t"]
        room = msg.get("room")
        if room is not None and room not in self.session.rooms:
            tab.refused += 1
            return
        if kind == "activity":
            device.set_status(msg["status"], since=min(msg.get("since", time.time()), time.time()) if msg["status"] == "away" else None)
        elif kind == "typing":
            device.typing(room, active=msg["active"], ttl=msg.get("ttl", DEFAULT_TYPING_TTL))
        elif kind == "cursor":
            device.move_cursor(room, msg["x"], msg["y"], region=msg.get("region"), visible=msg.get("visible", True))
        elif kind == "chat":
            device.send_chat(room, msg["text"])
        elif kind == "read":
            message = self.session.find_message(room, msg["id"])
            if room not in self.private_receipt_rooms and message is not None:
                device.mark_read(room, message)
        elif kind == "react":
            count = self._allowed_reactions(tab, room, msg.get("count", 1))
            if count:
                device.react(room, msg["emoji"], count=count)

    def _allowed_reactions(self, tab: Tab, room: str, count: int) -> int:
        """Cap a tab's reaction clicks at the room's max_per_second: a burst larger than
        what is left is cut down to it."""
        rate = self.reactions_per_second.get(room, DEFAULT_REACTIONS_PER_SECOND)
        bucket = tab.reactions.setdefault(room, TokenBucket(rate=rate, burst=rate))
        allowed = min(count, int(bucket.available()))
        if allowed and bucket.take(allowed):
            return allowed
        bucket.refused += 1
        return 0

    # -- fan-out ---------------------------------------------------------------------------
    def _from_session_thread(self, event: Event) -> None:
        """Session listener (dispatcher thread): hop onto the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        if isinstance(event, Snapshot):  # the observer resynced: every tab replaces its state
            self._broadcast(dumps(snapshot_message(event, broker=self._broker())))
            return
        if isinstance(event, CursorMoved):
            self._cursor_moves.setdefault(event.room, {})[(event.user, event.device)] = cursor_move(event)
            return
        message = event_message(event)
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
            asyncio.ensure_future(tab.websocket.close(code=1013, reason="too far behind"))
            return
        tab.queue.put_nowait(text)

    async def _write(self, tab: Tab) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while (text := await tab.queue.get()) is not None:
                if tab.websocket.application_state != WebSocketState.CONNECTED:
                    return
                await tab.websocket.send_text(text)
                self.frames_sent += 1

    async def _refresh_token(self, tab: Tab) -> None:
        while True:
            await asyncio.sleep(self.signer.ttl / 2)
            c = tab.claims
            self._send(tab, {"t": "token", "token": self.signer.sign(user=c.user, name=c.name, org=c.org, avatar=c.avatar)})

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
        return len(self._slots)

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
        }
        return JSONResponse(body, status_code=200 if stats.connected else 503)
