"""The editor's live preview: the draft's widgets, served by a kit of the preview's own
on an embedded broker, with simulated people in its rooms.

A kit's server side (the session, which subscribes to the rooms, and the bridge, which
applies private receipts, reaction limits and chat history) is built from settings
when it starts. So the preview runs one kit at a time and starts a fresh one, under a
new org id of its own, when the draft changes anything that side reads; the tabs follow
because their connection data names the new org (the widgets reconnect when the org
changes). What only the page reads (titles, ttls, heights, a new typing indicator...)
re-renders at once without a restart.

Nothing of the preview reaches a real broker or a real chat history: it reads neither
MQTT_URL nor the file's broker, keeps chat in a SQLite file of its own in a temporary
folder (never the file's `history`, nor PRESENCE_HISTORY_URL), and its people are
simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from components.bridge import HEALTH_PATH, WS_PATH
from components.app_document import AppDocument
from components.embedded_broker import EmbeddedBroker
from components.kit import PresenceKit
from components.settings import AppSettings
from components.simulated_people import Plan, SimulatedPeople

log = logging.getLogger(__name__)

SWITCH_TIMEOUT = 30.0


class PreviewWorld:
    def __init__(self, settings: AppSettings | None) -> None:
        self._first = settings
        self._broker: EmbeddedBroker | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # one switch at a time, whichever tab asks
        self._kit: PresenceKit | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._people: SimulatedPeople | None = None
        self._key: tuple[Any, ...] | None = None
        self.generation = 0

    # -- the server side (st.App) --------------------------------------------------------------
    @property
    def routes(self) -> list[Any]:
        return [WebSocketRoute(WS_PATH, self._serve), Route(HEALTH_PATH, self._health)]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        self._broker = EmbeddedBroker()
        self._scratch = tempfile.TemporaryDirectory(prefix="presence-preview-")
        self._loop = asyncio.get_running_loop()
        try:
            if self._first is not None:
                await self._switch(self._first)
            yield
        finally:
            self._loop = None
            await self._stop_current()
            self._broker.stop()
            self._scratch.cleanup()

    async def _serve(self, websocket: WebSocket) -> None:
        endpoint = self._endpoint(WS_PATH)
        if endpoint is None:
            await websocket.accept()
            await websocket.close(code=1013, reason="the preview is starting")
            return
        await endpoint(websocket)

    async def _health(self, request: Request) -> JSONResponse:
        endpoint = self._endpoint(HEALTH_PATH)
        if endpoint is None:
            return JSONResponse({"error": "the preview is not running"}, status_code=503)
        return await endpoint(request)

    def _endpoint(self, path: str) -> Any:
        kit = self._kit
        return None if kit is None else next(route.endpoint for route in kit.routes if route.path == path)

    # -- the page side (the editor's script thread) -----------------------------------------------
    def show(self, settings: AppSettings) -> PresenceKit | None:
        """The kit to render `settings` with, after starting a new server side if the
        draft changed what it reads; None while the preview is not running (an AppTest
        page, or before start-up)."""
        loop = self._loop
        if loop is None:
            return None
        with self._lock:
            if _server_side(settings) != self._key:
                asyncio.run_coroutine_threadsafe(self._switch(settings), loop).result(SWITCH_TIMEOUT)
            return PresenceKit(self._projected(settings), environ={})

    @property
    def people(self) -> SimulatedPeople | None:
        return self._people

    async def _switch(self, settings: AppSettings) -> None:
        await self._stop_current()
        self.generation += 1
        kit = PresenceKit(self._projected(settings), environ={})
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(kit.lifespan())
        assert kit.session is not None
        self._people = SimulatedPeople(kit.session, Plan.of(settings)).start()
        self._kit, self._stack, self._key = kit, stack, _server_side(settings)
        log.info("preview %d: org %s, rooms %s", self.generation, kit.settings.org, ", ".join(settings.rooms))

    async def _stop_current(self) -> None:
        people, stack = self._people, self._stack
        self._kit = self._people = self._stack = self._key = None
        if people is not None:
            await asyncio.to_thread(people.stop)
        if stack is not None:
            await stack.aclose()

    def _projected(self, settings: AppSettings) -> AppSettings:
        """The draft as the preview serves it: its own org, the embedded broker and a
        chat history in the preview's scratch folder."""
        assert self._broker is not None and self._scratch is not None
        broker = dataclasses.replace(
            settings.broker, url=self._broker.url, protocol=self._broker.protocol,
            username=None, password=None, tls=None, topic_prefix="",
        )
        history = dataclasses.replace(settings.history, url=f"sqlite:///{self._scratch.name}/history.sqlite3", table="presence_chat")
        return dataclasses.replace(settings, org=f"preview-{self.generation}", broker=broker, history=history)


@functools.cache
def preview_world(app_file: str) -> PreviewWorld:
    """The one preview of this process (the st.App module and the page share it),
    starting from the file as it is when it is valid."""
    return PreviewWorld(AppDocument.open(app_file).check().settings)


def _server_side(settings: AppSettings) -> tuple[Any, ...]:
    """What the preview's server side and its people read from the settings."""
    kit = PresenceKit(settings, environ={})
    return (
        settings.rooms,
        settings.broker.leave_grace,
        kit.private_receipt_rooms(),
        tuple(sorted((room or "", r.per_second, tuple(sorted(r.emojis))) for room, r in kit.room_reactions().items())),  # "": rooms on demand
        kit.chat_history(),
        Plan.of(settings),
    )
