"""Short-lived signed connection tokens: Python hands one to the widget, the widget
presents it when it opens the kit's WebSocket, so a tab can only act as the user the
server identified.

A token is `base64url(json claims) + "." + base64url(HMAC-SHA256(key, claims))`. The
key comes from the environment variable PRESENCE_TOKEN_KEY so that every replica
behind a load balancer accepts the others' tokens; without it each process makes a
random key of its own (fine for one process, logged once).

What a token may open is limited, so a token copied out of a page is worth one tab:
- a page token (minted when the page renders, before the tab has chosen its device id)
  carries a random nonce; the bridge binds that nonce to the first device it opens and
  refuses it for any other device until it expires (per server process: on another
  replica the same token can open one device more, which the per-user device cap bounds);
- the fresh tokens the bridge sends an open socket name the device itself, so they open
  that device only, on every replica;
- every token carries `issued`, when its page was rendered: no input can have stopped
  before that, which bounds an "away since" a tab may claim.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .display_names import clean_display_name
from .errors import InvalidToken, TokenExpired, TokenKeyError
from .ids import check_id

log = logging.getLogger(__name__)

KEY_VARIABLE = "PRESENCE_TOKEN_KEY"
DEFAULT_TTL = 600.0
"""Seconds a token stays valid; an open socket is sent fresh ones before that."""
MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class Claims:
    user: str
    name: str
    org: str
    expires: float
    issued: float
    """When the page that got this token was rendered (kept by fresh tokens)."""
    nonce: str
    """Names the page token; fresh tokens keep their page token's nonce."""
    rooms: frozenset[str] = frozenset()
    """The rooms the page showed: a tab may read and write these (and the org's presence)."""
    device: str | None = None
    """The one device a fresh token may open; None for a page token."""
    avatar: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes, *, ttl: float = DEFAULT_TTL, wall: Callable[[], float] = time.time) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise TokenKeyError(f"the token key must be at least {MIN_KEY_BYTES} bytes long, not {len(key)}")
        self._key = key
        self.ttl = ttl
        self._wall = wall

    def sign(self, *, user: str, name: str, org: str, rooms: Iterable[str] = (), avatar: str | None = None) -> str:
        """A page token for `user` showing `rooms` (its display name is cleaned here)."""
        now = self._wall()
        return self._signed(user=user, name=clean_display_name(name) or user, org=org, rooms=rooms, avatar=avatar,
                            issued=now, nonce=secrets.token_urlsafe(12), device=None)

    def refresh(self, claims: Claims, *, device: str, rooms: Iterable[str]) -> str:
        """A fresh token for a socket that opened `device` with `claims` and may see
        `rooms`: that device only."""
        return self._signed(user=claims.user, name=claims.name, org=claims.org, rooms=rooms, avatar=claims.avatar,
                            issued=claims.issued, nonce=claims.nonce, device=device)

    def _signed(self, *, user: str, name: str, org: str, rooms: Iterable[str], avatar: str | None, issued: float, nonce: str, device: str | None) -> str:
        claims: dict[str, object] = {
            "u": check_id(user, kind="user"), "n": name, "o": check_id(org, kind="org"),
            "r": sorted({check_id(room, kind="room") for room in rooms}),
            "x": round(self._wall() + self.ttl, 3), "i": round(issued, 3), "j": nonce,
        }
        if device is not None:
            claims["d"] = check_id(device, kind="device")
        if avatar:
            claims["a"] = avatar
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str) -> Claims:
        body, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidToken("token signature does not match")
        try:
            raw = json.loads(_unb64(body))
            claims = Claims(
                user=check_id(raw["u"], kind="user"), name=str(raw["n"]), org=raw["o"], expires=float(raw["x"]),
                issued=float(raw["i"]), nonce=str(raw["j"]), rooms=frozenset(check_id(room, kind="room") for room in raw["r"]),
                device=None if raw.get("d") is None else check_id(raw["d"], kind="device"),
                avatar=raw.get("a"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidToken(f"token is malformed: {exc}") from None
        if claims.expires < self._wall():
            raise TokenExpired("token has expired")
        return claims

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


@functools.cache
def process_signer() -> TokenSigner:
    """The signer every page and socket of this process shares; TokenKeyError (one clear
    line, never the key) when PRESENCE_TOKEN_KEY is set but too short."""
    configured = os.environ.get(KEY_VARIABLE)
    if configured:
        try:
            return TokenSigner(configured.encode())
        except TokenKeyError as exc:
            raise TokenKeyError(f"{KEY_VARIABLE} is too short: {exc}; use a long random string") from None
    log.warning("%s is not set: using a random per-process key (replicas would refuse each other's tokens)", KEY_VARIABLE)
    return TokenSigner(secrets.token_bytes(32))
