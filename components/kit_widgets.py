"""PresenceKit's one-widget methods: `kit.presence_list(me, room="design",
counter_above=20)` renders one widget on its own, wherever the page puts it (a column,
a tab, a dialog), with the options the app file would write, checked against the same
schema (which fills in the rest) and named in the error when they are wrong.

One server serves every page, so what it applies comes from the app file: the rooms it
subscribes to, the rooms where it never publishes read receipts, and each room's reaction
emojis and rate limit. A widget that would promise something else is
refused with a ConfigError that says what the app file must hold, never a traceback
from deep inside.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from .app_file import check_widget
from .errors import ConfigError
from .identity import Identity
from .settings import (
    AppSettings,
    ReactionsSettings,
    ReadReceiptsSettings,
    WidgetSettings,
)
from .widgets import mount


class WidgetMethods:
    """Mixed into PresenceKit, whose `settings`, `connection_data`, `private_receipt_rooms`
    and `room_reactions` it uses. Every keyword is the schema's
    option of that name (a test holds them equal); None leaves it to the schema."""

    settings: AppSettings

    def presence_list(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, counter_above: int | None = None,
        counter_hysteresis: int | None = None, away_after: float | None = None, show_devices: bool | None = None,
        title: str | None = None,
    ) -> None:
        self._render_one(identity, "presence_list", locals())

    def typing_indicator(self, identity: Identity, *, id: str | None = None, room: str | None = None, ttl: float | None = None) -> None:
        self._render_one(identity, "typing_indicator", locals())

    def cursor_overlay(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, region: str | None = None,
        rate_hz: float | None = None, hide_after: float | None = None,
    ) -> None:
        self._render_one(identity, "cursor_overlay", locals())

    def read_receipts(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, private: bool | None = None,
        collapse_above: int | None = None,
    ) -> None:
        self._render_one(identity, "read_receipts", locals())

    def reactions(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, emojis: list[str] | None = None,
        burst_window_ms: int | None = None, max_per_second: int | None = None,
    ) -> None:
        self._render_one(identity, "reactions", locals())

    def chat_panel(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, history: int | None = None,
        typing_ttl: float | None = None, private_receipts: bool | None = None, collapse_above: int | None = None,
        height: int | Literal["auto"] | None = None,
    ) -> None:
        self._render_one(identity, "chat_panel", locals())

    def field_presence(
        self, identity: Identity, *, id: str | None = None, room: str | None = None, fields: list[str] | None = None,
        lock: bool | None = None, follow: bool | None = None,
    ) -> None:
        self._render_one(identity, "field_presence", locals())

    # -- shared by the methods above and by render() ------------------------------------
    def _render_one(self, identity: Identity, kind: str, arguments: dict[str, Any]) -> None:
        """`arguments` are a method's locals(): its identity, self and the options."""
        label = f"kit.{kind}"
        options = {name: value for name, value in arguments.items() if name not in ("self", "identity") and value is not None}
        room = options.get("room")
        rooms = self.settings.rooms
        if isinstance(room, str) and room not in rooms and self.room_allowed(identity, room):  # type: ignore[attr-defined]
            rooms = (*rooms, room)  # a room chosen at run time
        widget = check_widget({"type": kind, **options}, rooms=rooms, label=label)
        if problems := self._not_applied_by_the_server(widget):
            raise ConfigError(*(f"{label}: {problem}" for problem in problems))
        key = f"presence-kit-id-{widget.id}" if widget.id else f"presence-kit-py-{kind}-{widget.room or 'org'}"
        connection = self.connection_data(identity, rooms=[widget.room] if widget.room else [])  # type: ignore[attr-defined]
        mount_widget(widget, key=key, connection=connection)

    def _key_in_file(self, widget: WidgetSettings) -> str:
        """The mount key of one of the app file's widgets; a clear error for any other."""
        if widget.id:
            return f"presence-kit-id-{widget.id}"
        # by identity: two widgets with the same settings are equal, not the same entry
        for index, entry in enumerate(self.settings.widgets):
            if entry is widget:
                return f"presence-kit-{index}-{widget.type}"
        raise ValueError(
            f"{widget!r} is not one of the app file's widgets: render() takes those (kit.settings.widgets); "
            f"for a widget of your own, call kit.{widget.type}(me, ...) with its options"
        )

    def _not_applied_by_the_server(self, widget: WidgetSettings) -> list[str]:
        problems = []
        private = widget.private if isinstance(widget, ReadReceiptsSettings) else getattr(widget, "private_receipts", False)
        private_rooms = self.private_receipt_rooms()  # type: ignore[attr-defined]
        if private and widget.room not in private_rooms and (widget.room in self.settings.rooms or None not in private_rooms):
            problems.append(f"the server publishes read receipts in room {widget.room!r}: make them private there in the app file")
        if isinstance(widget, ReactionsSettings):
            reactions = self.room_reactions()  # type: ignore[attr-defined]
            served = reactions.get(widget.room) or (reactions.get(None) if widget.room not in self.settings.rooms else None)
            if served is None:
                problems.append(f"the server accepts no reactions in room {widget.room!r}: add a reactions widget for it to the app file")
            else:
                if widget.max_per_second != served.per_second:
                    problems.append(f"max_per_second: the server limits reactions in room {widget.room!r} to {served.per_second} a second (the app file's reactions widget)")
                if unknown := [e for e in widget.emojis if e not in served.emojis]:
                    problems.append(f"emojis: the server accepts only the app file's emojis in room {widget.room!r}, not {', '.join(unknown)}")
        return problems


def mount_widget(widget: WidgetSettings, *, key: str, connection: dict[str, Any]) -> None:
    """Mount one widget: its type, the tab's connection data and its options (its
    settings, as the schema names them)."""
    mount(widget.type, key=key, data={"type": widget.type, "connection": connection, "options": asdict(widget)})
