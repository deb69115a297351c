"""Short-lived signed connection tokens: Python hands one to the widget, the widget
presents it when it opens the kit's WebSocket, so a tab can only act as the user the
server identified.

A token is `base64url(json claims) + "." + base64url(HMAC-SHA256(key, claims))`. The
key comes from the environment variable PRESENCE_TOKEN_KEY so that every replica
behind a load balancer accepts the others' tokens; without it each process makes a
random key of its own (fine for one process, logged once).
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
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidToken
from .ids import check_id

log = logging.getLogger(__name__)

KEY_VARIABLE = "PRESENCE_TOKEN_KEY"
DEFAULT_TTL = 600.0
"""Seconds a token stays valid; an open socket is sent fresh ones before that."""


@dataclass(frozen=True, slots=True)
class Claims:
    user: str
    name: str
    org: str
    expires: float
    avatar: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes, *, ttl: float = DEFAULT_TTL, wall: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the token key must be at least 16 bytes")
        self._key = key
        self.ttl = ttl
        self._wall = wall

    def sign(self, *, user: str, name: str, org: str, avatar: str | None = None) -> str:
        claims = {"u": check_id(user, kind="user"), "n": name, "o": check_id(org, kind="org"), "x": round(self._wall() + self.ttl, 3)}
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
            claims = Claims(user=check_id(raw["u"], kind="user"), name=str(raw["n"]), org=raw["o"], expires=float(raw["x"]), avatar=raw.get("a"))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidToken(f"token is malformed: {exc}") from None
        if claims.expires < self._wall():
            raise InvalidToken("token has expired")
        return claims

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


@functools.cache
def process_signer() -> TokenSigner:
    """The signer every page and socket of this process shares."""
    configured = os.environ.get(KEY_VARIABLE)
    if configured:
        return TokenSigner(configured.encode())
    log.warning("%s is not set: using a random per-process key (replicas would refuse each other's tokens)", KEY_VARIABLE)
    return TokenSigner(secrets.token_bytes(32))
