"""Everything one app file needs inside one Streamlit server process.

    # demo_app.py (run with `streamlit run demo_app.py`)
    import streamlit as st
    from components.kit import PresenceKit
    kit = PresenceKit.from_app_file("presence.yaml")
    app = st.App("page.py", routes=kit.routes, lifespan=kit.lifespan)

    # page.py
    kit = PresenceKit.from_app_file("presence.yaml")
    kit.render(kit.identify())

The lifespan starts the broker connection (the app file's broker, `MQTT_URL` from the
environment, or an embedded broker when neither is given), the process's shared session
and the WebSocket bridge; the page script only mints a signed token and mounts the
widgets, so it renders (and can be tested with AppTest) without any of them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .app_file import load_app_file
from .bridge import HEALTH_PATH, WS_PATH, TabHub
from .broker import BrokerSettings
from .embedded_broker import EmbeddedBroker
from .identity import Identity, identify
from .session import PresenceSession
from .settings import (
    AppSettings,
    ChatPanelSettings,
    PresenceListSettings,
    ReactionsSettings,
    ReadReceiptsSettings,
    WidgetSettings,
)
from .tokens import process_signer
from .widgets import mount

log = logging.getLogger(__name__)

BROKER_URL_VARIABLE = "MQTT_URL"
DEFAULT_AWAY_AFTER = 300.0
DEFAULT_HISTORY = 200
W = TypeVar("W", bound=WidgetSettings)


class PresenceKit:
    def __init__(self, settings: AppSettings, *, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = dict(os.environ if environ is None else environ)
        self.session: PresenceSession | None = None
        self.hub: TabHub | None = None
        self.embedded: EmbeddedBroker | None = None
        self.signer = process_signer()

    @staticmethod
    def from_app_file(path: str | os.PathLike[str]) -> PresenceKit:
        """The one kit of this process for an app file (the app module and the page
        script get the same object)."""
        return _kit_for(str(Path(path).resolve()))

    # -- the server side -----------------------------------------------------------------
    def _connect_to(self) -> BrokerSettings:
        """Where to connect: `MQTT_URL` (one URL, or several separated by commas: the
        nodes of a cluster), else the app file's broker (a URL or a list), else an
        embedded broker started here (stopped with the lifespan)."""
        broker = self.settings.broker
        url = self._environ.get(BROKER_URL_VARIABLE) or broker.url
        protocol = broker.protocol
        if url is None:
            self.embedded = EmbeddedBroker()
            url, protocol = self.embedded.url, self.embedded.protocol
        tls = broker.tls
        return BrokerSettings.from_url(
            url,
            protocol=protocol,
            keepalive=broker.keepalive,
            topic_prefix=broker.topic_prefix,
            username=broker.username,
            password=broker.password,
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
            key_file=str(tls.key_file) if tls and tls.key_file else None,
            capabilities=broker.capabilities,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """st.App lifespan: connect on start-up; on shutdown every tab's device leaves
        cleanly (explicit offline) before the broker connection closes."""
        broker = self._connect_to()
        self.session = PresenceSession(
            broker,
            org=self.settings.org,
            rooms=self.settings.rooms,
            leave_grace=self.settings.broker.leave_grace,
            last_seen_retention=self.settings.broker.last_seen_retention,
            lease=self.settings.broker.lease,
            history=max((w.history for w in self.widgets_of(ChatPanelSettings)), default=DEFAULT_HISTORY),
        ).start()
        self.hub = TabHub(
            self.session,
            signer=self.signer,
            leave_grace=self.settings.broker.leave_grace,
            private_receipt_rooms=self.private_receipt_rooms(),
            reactions_per_second={w.room: w.max_per_second for w in self.widgets_of(ReactionsSettings)},
        )
        await self.hub.start()
        log.info("presence kit: org %s on %s", self.settings.org, broker.url)
        try:
            yield
        finally:
            await self.hub.stop()
            self.session.close(timeout=2.0)
            if self.embedded is not None:
                self.embedded.stop()

    @property
    def routes(self) -> list[Any]:
        return [WebSocketRoute(WS_PATH, self._serve), Route(HEALTH_PATH, self._health)]

    async def _serve(self, websocket: WebSocket) -> None:
        if self.hub is None:
            await websocket.accept()
            await websocket.close(code=1013, reason="presence kit is not started")
            return
        await self.hub.serve(websocket)

    async def _health(self, request: Request) -> JSONResponse:
        if self.hub is None:
            return JSONResponse({"error": "presence kit is not started"}, status_code=503)
        return await self.hub.health(request)

    def broker_note(self) -> str:
        """One line for the page: which broker, and whether we are connected to it."""
        if self.session is None:
            return "Presence server not running in this process."
        stats = self.session.stats()
        where = f"embedded {self.embedded.kind} at {stats.broker}" if self.embedded else stats.broker
        if stats.connected:
            refusal = self.session.refusal
            return f"Connected to {where}, but presence is refused: {refusal}" if refusal else f"Connected to {where}."
        return f"Broker {where} unreachable, retrying: {stats.last_error or 'connecting…'}"

    def private_receipt_rooms(self) -> frozenset[str]:
        """Rooms where this server never publishes read receipts (private mode)."""
        private = {w.room for w in self.widgets_of(ReadReceiptsSettings) if w.private}
        private |= {w.room for w in self.widgets_of(ChatPanelSettings) if w.private_receipts}
        return frozenset(private)

    # -- the page side ---------------------------------------------------------------------
    def identify(self) -> Identity | None:
        return identify(self.settings.identity)

    def connection_data(self, identity: Identity) -> dict[str, Any]:
        """What every widget's browser side needs to open the tab's socket."""
        away = [w.away_after for w in self.widgets_of(PresenceListSettings)]
        return {
            "token": self.signer.sign(user=identity.user, name=identity.name, org=self.settings.org, avatar=identity.avatar),
            "wsPath": WS_PATH,
            "org": self.settings.org,
            "user": identity.user,
            "name": identity.name,
            "awayAfter": min(away, default=DEFAULT_AWAY_AFTER),
        }

    def render(self, identity: Identity, widgets: Iterable[WidgetSettings] | None = None) -> None:
        """Mount the app file's widgets (or the given ones of them), in order, for
        `identity`. Each widget's options are its settings, as the schema names them."""
        connection = self.connection_data(identity)
        for widget in self.settings.widgets if widgets is None else widgets:
            # by identity: two widgets with the same settings are equal, not the same entry
            index = next(i for i, entry in enumerate(self.settings.widgets) if entry is widget)
            mount(widget.type, key=f"presence-kit-{index}-{widget.type}", data={"type": widget.type, "connection": connection, "options": asdict(widget)})

    def widgets_of(self, kind: type[W]) -> list[W]:
        """The app file's widgets of one settings type, e.g. `kit.widgets_of(ChatPanelSettings)`."""
        return [w for w in self.settings.widgets if isinstance(w, kind)]


@functools.cache
def _kit_for(path: str) -> PresenceKit:
    return PresenceKit(load_app_file(path))
