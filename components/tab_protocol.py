"""The JSON messages between the kit's WebSocket and a browser tab.

Tab to server, first: hello {token, device}    who the tab is (the token is never in the URL)
Server to tab (`t` names the type):
    welcome   {user, device, name, epoch}       the tab's identity, after the token checked out
    snapshot  {users, rooms, synced, broker}    the whole state, first thing after welcome
    presence  {user}                            a user's new aggregate (full, idempotent)
    gone      {user}                            a user's last device topic was cleared
    typing    {room, typists}                   the full list of typists of a room
    cursors   {room, moves: [[user, device, x, y, visible, region] | [user, device, null]]}
                                                every cursor that moved during one tick
    chat      {message}                         a new chat message
    receipt   {room, user, up_to}               a read marker moved forward
    reaction  {room, user, emoji, count}        a coalesced burst
    broker    {connected, error}                the server's link to the broker changed
    token     {token}                           a fresh token for reconnecting later
Tab to server: schemas/tab-message.schema.json (validated, anything else refused).

Avatars are sent only when they are https URLs on a host the app file allows (default:
none, so widgets show initials): an avatar URL is fetched by every viewer's browser, so
an arbitrary one would tell its owner who looks at the page, and from where.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from .events import (
    ChatMessage,
    ChatReceived,
    CursorMoved,
    Event,
    PresenceChanged,
    ReactionReceived,
    ReceiptMoved,
    Snapshot,
    TypingChanged,
)
from .presence import UserPresence


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def message_json(message: ChatMessage) -> dict[str, Any]:
    return {"id": message.id, "room": message.room, "user": message.user, "text": message.text, "name": message.name, "at": message.at}


class TabEncoder:
    """Session state and events as tab messages, with the app file's avatar policy."""

    def __init__(self, *, avatar_hosts: frozenset[str] = frozenset()) -> None:
        self.avatar_hosts = frozenset(host.lower() for host in avatar_hosts)

    def avatar(self, url: str | None) -> str | None:
        """`url` if viewers' browsers may fetch it, else None (initials are shown)."""
        if not url or not self.avatar_hosts:
            return None
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return None
        return url if parts.scheme == "https" and host is not None and host.lower() in self.avatar_hosts else None

    def user(self, presence: UserPresence) -> dict[str, Any]:
        doc = presence.to_json()
        doc["avatar"] = self.avatar(presence.avatar)
        return doc

    @staticmethod
    def cursor_move(event: CursorMoved) -> list[Any]:
        if event.cursor is None:
            return [event.user, event.device, None]
        c = event.cursor
        return [event.user, event.device, c.x, c.y, c.visible, c.region]

    def snapshot(self, snapshot: Snapshot, *, broker: dict[str, Any]) -> dict[str, Any]:
        return {
            "t": "snapshot",
            "users": [self.user(p) for p in snapshot.users.values()],
            "rooms": {
                name: {
                    "typists": list(room.typists),
                    "receipts": room.receipts,
                    "messages": [message_json(m) for m in room.messages],
                    "cursors": [self.cursor_move(CursorMoved(name, u, d, c)) for (u, d), c in room.cursors.items()],
                }
                for name, room in snapshot.rooms.items()
            },
            "synced": snapshot.complete,
            "broker": broker,
        }

    def event(self, event: Event) -> dict[str, Any] | None:
        """The tab message for a session event (cursor moves are batched elsewhere)."""
        if isinstance(event, PresenceChanged):
            if event.presence is None:
                return {"t": "gone", "user": event.user}
            return {"t": "presence", "user": self.user(event.presence)}
        if isinstance(event, TypingChanged):
            return {"t": "typing", "room": event.room, "typists": list(event.typists)}
        if isinstance(event, ChatReceived):
            return {"t": "chat", "message": message_json(event.message)}
        if isinstance(event, ReceiptMoved):
            return {"t": "receipt", "room": event.room, "user": event.user, "up_to": event.up_to}
        if isinstance(event, ReactionReceived):
            return {"t": "reaction", "room": event.room, "user": event.user, "emoji": event.emoji, "count": event.count}
        return None
