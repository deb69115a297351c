"""The JSON messages between the kit's WebSocket and a browser tab.

A tab says what it shows and gets exactly that: the presence of the scopes its lists
show (a page of members in display order, with counts), and the parts of the rooms its
widgets show. Nothing else reaches it.

Tab to server (schemas/tab-message.schema.json, validated, anything else refused):
    hello     {tokens, device, watch}      first frame: who the tab is (tokens are never in
                                           the URL) and what it shows
    auth      {tokens}                     the page was rendered again: its new tokens
    watch     {presence, rooms, history?}  what the tab shows now (replaces the last watch):
                                           presence: [{room|null, limit}], rooms: {room: [parts]},
                                           history: {room: how many latest messages at join}
    chat      {room, text, nonce?}         send a message; with a nonce it is answered (chat_ack)
    earlier   {room, before, limit?}       load earlier messages: the page of the room's chat
                                           just below `before` (answered with `history`)
    activity, typing, cursor, read, react  what its person does
    focus     {room, field, label?, lock?} its person edits this field of a room now (with
                                           lock: claims its soft lock); only in a room whose
                                           fields the tab shows
    blur      {}                           its person edits no field
    follow    {room, user?}                follow this person in a room (no user: nobody)
    followable {followable}                whether its person may be followed
Server to tab (`t` names the type; messages queued for a tab together arrive as one
frame holding a JSON array of them, in order):
    welcome   {user, device, name, epoch}  the tab's identity, after its tokens checked out
    people    {room, limit, counts, total, members, complete}
                                           a presence view: the first `limit` members of a
                                           scope (room null: the org) in display order, and
                                           counts by status; sent when watched and on resync.
                                           A member editing a field says where (`location`:
                                           {room, field, label}) in a view of that room, and
                                           in the org's view when the room is one anybody may
                                           see (TabEncoder.location_rooms)
    people_delta {room, limit, counts, total, upsert, remove}
                                           what changed in that view during one tick
    people_batch {deltas}                  the deltas of several views of the tab, one tick:
                                           a tab gets at most one presence frame a tick
    room      {room, typists?, receipts?, cursors?, fields?, names}
                                           the parts of a room the tab shows, when watched
    history   {room, before, messages, more, unavailable?}
                                           past chat, oldest first: the latest messages when the
                                           tab starts showing the chat (before null; also after a
                                           resync), or the page below `before` it asked for;
                                           more: earlier ones may exist; unavailable: the store
                                           could not be read (a join then holds what the server
                                           has in memory). New messages come after it, each once.
    typing    {room, typists, names}       the full list of typists of a room
    cursors   {room, moves: [[user, device, x, y, visible, region, name] | [user, device, null]]}
                                           every cursor that moved during one tick
    chat      {message}                    a new chat message (its sender's name included)
    chat_ack  {room, nonce, id, stored} | {room, nonce, error, reason}
                                           the tab's message was stored (stored: the server
                                           keeps a history) and handed to MQTT; or it was
                                           neither stored nor published, why in words (error)
                                           and as bridge.NotSent (reason: unavailable,
                                           too_fast, unstorable, room)
    receipt   {room, user, up_to, name}    a read marker moved forward
    reaction  {room, user, emoji, count, name}   a coalesced burst
    fields    {room, editors: [{user, device, name, field?, label?, lock?, holds?, follows?,
               unfollowable?}]}            who edits which field of the room and whom they follow,
                                           the whole state, by field in the lock rule's order;
                                           `holds` marks each field's lock holder
    refused   {room, reason}               a room the tab asked for and may not see
    broker    {connected, error, url}      the server's link to the broker changed
    token     {token}                      a fresh token for reconnecting later
Room parts: typing, chat, receipts, cursors, reactions, fields.

A chat message is identified by its id (a ULID: ids sort in time); a tab keeps one copy
of each id it holds, whichever frame brought it.

Display names travel with whatever names a user (members, typists, senders, readers,
cursors), so a tab can show a name without holding the whole org.

Avatars are sent only when they are https URLs on a host the app file allows (default:
none, so widgets show initials): an avatar URL is fetched by every viewer's browser, so
an arbitrary one would tell its owner who looks at the page, and from where.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

from .events import ChatMessage, Cursor, CursorMoved, RoomSnapshot
from .fields import FieldEntry, lock_holders
from .presence import UserPresence

RoomPart = Literal["typing", "chat", "receipts", "cursors", "reactions", "fields"]
ROOM_PARTS: tuple[RoomPart, ...] = ("typing", "chat", "receipts", "cursors", "reactions", "fields")
NameOf = Callable[[str], str | None]
"""A user's display name as the server knows it now (None: unknown)."""


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class TabEncoder:
    """Session state and events as tab messages, with the app file's avatar policy."""

    def __init__(self, *, avatar_hosts: frozenset[str] = frozenset(), location_rooms: frozenset[str] = frozenset()) -> None:
        """`location_rooms`: rooms anybody who sees the org's presence may see, so the org's
        view names a field being edited there (a view of one room names its own)."""
        self.avatar_hosts = frozenset(host.lower() for host in avatar_hosts)
        self.location_rooms = location_rooms

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

    def member(self, presence: UserPresence, scope: str | None = None) -> dict[str, Any]:
        """One person of the presence view of `scope` (a room, None: the org); where else
        they are is not the tab's business."""
        doc = {
            "user": presence.user,
            "status": presence.status,
            "devices": presence.devices,
            "since": presence.since,
            "name": presence.name,
            "avatar": self.avatar(presence.avatar),
        }
        focus = presence.focus
        if focus is not None and (focus.room == scope if scope is not None else focus.room in self.location_rooms):
            doc["location"] = {"room": focus.room, "field": focus.field, "label": focus.label}
        return doc

    @staticmethod
    def fields(entries: Iterable[FieldEntry]) -> list[dict[str, Any]]:
        """A room's field state (in the lock rule's order) as the tab's `editors`."""
        entries = list(entries)
        holders = set(lock_holders(entries).values())
        editors = []
        for entry in entries:
            doc: dict[str, Any] = {"user": entry.user, "device": entry.device, "name": entry.name}
            if entry.focus is not None:
                doc.update(field=entry.focus.field, label=entry.focus.label, lock=entry.focus.lock, holds=entry in holders)
            if entry.follows is not None:
                doc["follows"] = entry.follows
            if entry.unfollowable:
                doc["unfollowable"] = True
            editors.append(doc)
        return editors

    @staticmethod
    def message(message: ChatMessage, name: str | None) -> dict[str, Any]:
        return {
            "id": message.id, "room": message.room, "user": message.user, "text": message.text,
            "name": name or message.name, "at": message.at,
        }

    @staticmethod
    def cursor_move(event: CursorMoved, name: str | None) -> list[Any]:
        return cursor_move(event.user, event.device, event.cursor, name)

    def room(self, room: str, snapshot: RoomSnapshot, parts: Iterable[RoomPart], name_of: NameOf) -> dict[str, Any]:
        """The parts of a room a tab shows, with the names of everyone they mention (its
        chat's messages come in a `history` frame: components/tab_history.py)."""
        doc: dict[str, Any] = {"t": "room", "room": room}
        mentioned: set[str] = set()
        for part in parts:
            if part == "typing":
                doc["typists"] = list(snapshot.typists)
                mentioned.update(snapshot.typists)
            elif part == "receipts":
                doc["receipts"] = snapshot.receipts
                mentioned.update(snapshot.receipts)
            elif part == "cursors":
                doc["cursors"] = [cursor_move(u, d, c, name_of(u)) for (u, d), c in snapshot.cursors.items()]
            elif part == "fields":
                doc["fields"] = self.fields(snapshot.fields)
        doc["names"] = names(mentioned, name_of)
        return doc


def cursor_move(user: str, device: str, cursor: Cursor | None, name: str | None) -> list[Any]:
    if cursor is None:
        return [user, device, None]
    return [user, device, cursor.x, cursor.y, cursor.visible, cursor.region, name]


def names(users: Iterable[str], name_of: NameOf) -> dict[str, str]:
    return {user: name for user in users if (name := name_of(user))}
