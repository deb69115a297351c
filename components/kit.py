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
with its chat history store (the app file's `history`, `PRESENCE_HISTORY_URL` from the
environment winning; a database unreachable at start is one warning line, presence
works meanwhile and the store retries) and the WebSocket bridge; the page script only
mints a signed token and mounts the widgets, so it renders (and can be tested with
AppTest) without any of them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ._compat import disable_nagle_on_listening_sockets
from .app_file import load_app_file
from .bridge import HEALTH_PATH, WS_PATH, RoomReactions, TabHub
from .broker import BrokerSettings
from .embedded_broker import EmbeddedBroker
from .errors import InvalidId, PresenceKitError, RoomRefused
from .history import history_store_for
from .ids import check_id
from .identity import Identity, identify
from .rooms import DEFAULT_CURSOR_TTL
from .kit_widgets import WidgetMethods, mount_widget
from .session import PresenceSession
from .settings import (
    AppSettings,
    ChatPanelSettings,
    CursorOverlaySettings,
    PresenceListSettings,
    ReactionsSettings,
    ReadReceiptsSettings,
    WIDGET_SETTINGS,
    WidgetSettings,
)
from .tab_admission import AdmissionLimits
from .tokens import TokenSigner, process_signer

log = logging.getLogger(__name__)

BROKER_URL_VARIABLE = "MQTT_URL"
DEFAULT_AWAY_AFTER = 300.0
DEFAULT_HISTORY = 200
W = TypeVar("W", bound=WidgetSettings)


class PresenceKit(WidgetMethods):
    def __init__(self, settings: AppSettings, *, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = dict(os.environ if environ is None else environ)
        self.session: PresenceSession | None = None
        self.hub: TabHub | None = None
        self.embedded: EmbeddedBroker | None = None
        self.start_error: str | None = None
        """Why the lifespan could not start the kit (one line, no secret), if it could not."""
        self.authorize: Callable[[Identity, str], bool] | None = None
        """Optional: may this person be shown this room (one allowed by the app file)?
        Set it in the app module, e.g. `kit.authorize = lambda me, room: can_read(me.user, room)`."""
        self._room_patterns = [re.compile(pattern) for pattern in settings.rooms_on_demand.allow]

    @property
    def signer(self) -> TokenSigner:
        """The process's token signer; TokenKeyError when PRESENCE_TOKEN_KEY is too short."""
        return process_signer()

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
        if url is None:
            self.embedded = EmbeddedBroker()
            return broker.connection(self.embedded.url, protocol=self.embedded.protocol)
        return broker.connection(url)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """st.App lifespan: connect on start-up; on shutdown every tab's device leaves
        cleanly (explicit offline) before the broker connection closes. A configuration
        the kit cannot start with (a malformed MQTT_URL, a short PRESENCE_TOKEN_KEY) is
        logged as one line without secrets; the page and the health route say it and
        the server keeps serving everything else."""
        try:
            await self._start()
        except PresenceKitError as exc:
            self.start_error = str(exc)
            log.error("presence kit cannot start: %s", self.start_error)
        try:
            yield
        finally:
            await self._stop()

    async def _start(self) -> None:
        disable_nagle_on_listening_sockets()  # tabs' frames go out at once (see _compat)
        signer = self.signer  # a bad key is found before anything connects
        store = history_store_for(self.settings.history, environ=self._environ)  # so is a bad history URL
        broker = self._connect_to()
        settings = self.settings
        self.session = PresenceSession(
            broker,
            org=settings.org,
            rooms=settings.rooms,
            leave_grace=settings.broker.leave_grace,
            last_seen_retention=settings.broker.last_seen_retention,
            lease=settings.broker.lease,
            history=self.chat_history(),
            cursor_ttl=max((w.hide_after for w in self.widgets_of(CursorOverlaySettings)), default=DEFAULT_CURSOR_TTL),
            devices_per_user=settings.limits.devices_per_user,
            linger=settings.rooms_on_demand.linger,
            history_store=store,
        ).start()
        self.hub = TabHub(
            self.session,
            signer=signer,
            leave_grace=settings.broker.leave_grace,
            limits=AdmissionLimits(
                devices_per_user=settings.limits.devices_per_user,
                sockets_per_address=settings.limits.sockets_per_address,
                allowed_origins=frozenset(settings.access.allowed_origins),
            ),
            private_receipt_rooms=self.private_receipt_rooms(),
            reactions=self.room_reactions(),
            avatar_hosts=frozenset(settings.access.avatar_hosts),
            # the org's list names fields edited in the fixed rooms, unless a hook may
            # refuse some person some room
            location_rooms=frozenset(settings.rooms) if self.authorize is None else frozenset(),
        )
        await self.hub.start()
        log.info("presence kit: org %s on %s, chat history in %s", settings.org, broker.url, store.url.redacted)

    async def _stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        if self.session is not None:
            self.session.close(timeout=2.0)
        if self.embedded is not None:
            self.embedded.stop()

    @property
    def routes(self) -> list[Any]:
        return [WebSocketRoute(WS_PATH, self._serve), Route(HEALTH_PATH, self._health)]

    async def _serve(self, websocket: WebSocket) -> None:
        if self.hub is None:
            await websocket.accept()
            await websocket.close(code=1013, reason=(self.start_error or "presence kit is not started")[:120])
            return
        await self.hub.serve(websocket)

    async def _health(self, request: Request) -> JSONResponse:
        if self.hub is None:
            return JSONResponse({"error": self.start_error or "presence kit is not started"}, status_code=503)
        return await self.hub.health(request)

    def broker_note(self) -> str:
        """One line for the page: which broker, whether we are connected to it, and
        whether chat history can be reached (where it is stays in the server's log)."""
        if self.start_error is not None:
            return f"Presence is unavailable: {self.start_error}"
        if self.session is None:
            return "Presence server not running in this process."
        stats = self.session.stats()
        where = f"embedded {self.embedded.kind} at {stats.broker}" if self.embedded else stats.broker
        if stats.connected:
            refusal = self.session.refusal
            note = f"Connected to {where}, but presence is refused: {refusal}" if refusal else f"Connected to {where}."
        else:
            note = f"Broker {where} unreachable, retrying: {stats.last_error or 'connecting…'}"
        if stats.history is not None and not stats.history.available and stats.history.last_error:
            note += " Chat history is unavailable (retrying): new messages cannot be sent and only recent ones are shown."
        return note

    def room_reactions(self) -> dict[str | None, RoomReactions]:
        """Per room: the emojis its reaction widgets offer (the only ones accepted) and the
        clicks a second one user may send; under None, what applies to rooms chosen at run
        time (any reactions widget may be shown in one)."""
        found: dict[str | None, RoomReactions] = {}
        for w in self.widgets_of(ReactionsSettings):
            for room in (w.room, None):
                held = found.get(room)
                emojis = frozenset(w.emojis) | (held.emojis if held else frozenset())
                found[room] = RoomReactions(emojis, max(w.max_per_second, held.per_second if held else 0))
        return found

    def private_receipt_rooms(self) -> frozenset[str | None]:
        """Rooms where this server never publishes read receipts (private mode); None
        among them: nor in rooms chosen at run time (a private widget may be shown there)."""
        private: set[str | None] = {w.room for w in self.widgets_of(ReadReceiptsSettings) if w.private}
        private |= {w.room for w in self.widgets_of(ChatPanelSettings) if w.private_receipts}
        return frozenset(private | ({None} if private else set()))

    def chat_history(self) -> int:
        """Chat messages the session keeps per room in memory (the largest chat_panel
        history): what a joining tab is shown while the history store is unreachable."""
        return max((w.history for w in self.widgets_of(ChatPanelSettings)), default=DEFAULT_HISTORY)

    # -- the page side ---------------------------------------------------------------------
    def identify(self) -> Identity | None:
        return identify(self.settings.identity)

    def room_allowed(self, identity: Identity, room: str) -> bool:
        """May `identity` be shown `room`? A fixed room, or one the app file's
        rooms_on_demand.allow patterns match; and then what `kit.authorize` says."""
        if room not in self.settings.rooms and not any(p.fullmatch(room) for p in self._room_patterns):
            return False
        return self.authorize is None or bool(self.authorize(identity, room))

    def chosen_room(self, identity: Identity) -> str | None:
        """The room the page's query parameter chooses (rooms_on_demand.query_param), if
        any; RoomRefused when it may not be shown to `identity`."""
        param = self.settings.rooms_on_demand.query_param
        value = st.query_params.get(param) if param else None
        return None if value is None else self._allowed_room(identity, value)

    def _allowed_room(self, identity: Identity, room: str) -> str:
        try:
            check_id(room, kind="room")
        except InvalidId as exc:
            raise RoomRefused(str(exc)) from None
        if not self.room_allowed(identity, room):
            raise RoomRefused(f"room {room!r} is not open to {identity.user}")
        return room

    def connection_data(self, identity: Identity, *, rooms: Iterable[str]) -> dict[str, Any]:
        """What every widget's browser side needs to open the tab's socket (a token that
        names the rooms these widgets show: the tab may see those and no others) and to
        word what it shows (the app file's locale and labels)."""
        away = [w.away_after for w in self.widgets_of(PresenceListSettings)]
        return {
            "token": self.signer.sign(user=identity.user, name=identity.name, org=self.settings.org, rooms=rooms, avatar=identity.avatar),
            "wsPath": WS_PATH,
            "org": self.settings.org,
            "user": identity.user,
            "name": identity.name,
            "awayAfter": min(away, default=DEFAULT_AWAY_AFTER),
            "locale": self.settings.locale,  # None: the browser's language
            "labels": self.settings.labels,
        }

    def render(
        self,
        identity: Identity,
        widgets: Iterable[WidgetSettings] | None = None,
        *,
        only: Iterable[str] | None = None,
        room: str | None = None,
    ) -> None:
        """Mount the app file's widgets, in order, for `identity`: all of them, the given
        ones, or `only` those named (each name a widget's `id`, or a widget type for every
        widget of that type), so a page places widgets in columns with one call each.
        Each widget's options are its settings, as the schema names them.

        `room` (or, without it, the room the query parameter chooses) puts every widget
        in that room, the presence list included: "who else is viewing ticket-42". A room
        the app file does not allow, or `kit.authorize` refuses, renders a clear error and
        no widget."""
        if only is not None:
            widgets = self._named(list(only))
        try:
            room = self._allowed_room(identity, room) if room is not None else self.chosen_room(identity)
            chosen = [(self._key_in_file(w), w) for w in (self.settings.widgets if widgets is None else widgets)]
            placed = [(key, w if room is None else replace(w, room=room)) for key, w in chosen]
            connection = self.connection_data(identity, rooms={w.room for _, w in placed if w.room is not None})
        except PresenceKitError as exc:  # e.g. a short PRESENCE_TOKEN_KEY: one line, not a traceback
            st.error(f"Presence is unavailable: {exc}")
            return
        for key, widget in placed:
            mount_widget(widget, key=key, connection=connection)

    def _named(self, names: list[str]) -> list[WidgetSettings]:
        """The app file's widgets named by id or by type, in file order (a type the file
        has no widget of names none); a name that is neither is a ValueError that lists
        what there is."""
        ids = {w.id for w in self.settings.widgets if w.id}
        unknown = [n for n in names if n not in ids and n not in WIDGET_SETTINGS]
        if unknown:
            raise ValueError(f"no widget of the app file has the id {', '.join(map(repr, unknown))}, nor is it a widget type "
                             f"(ids: {', '.join(sorted(ids)) or 'none'}; types: {', '.join(WIDGET_SETTINGS)})")
        return [w for w in self.settings.widgets if w.type in names or (w.id is not None and w.id in names)]

    def widgets_of(self, kind: type[W]) -> list[W]:
        """The app file's widgets of one settings type, e.g. `kit.widgets_of(ChatPanelSettings)`."""
        return [w for w in self.settings.widgets if isinstance(w, kind)]


@functools.cache
def _kit_for(path: str) -> PresenceKit:
    return PresenceKit(load_app_file(path))
