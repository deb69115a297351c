"""Who may open a tab's socket, and how many: the checks the bridge makes before a
socket becomes a device. Pure apart from the clock passed in.

- Origin: a browser names the page that opens a WebSocket. The socket is refused unless
  that page is on the host the socket was opened on, or on an origin the app file
  allows (a reverse proxy that rewrites Host, a page on another domain). A client that
  sends no Origin is not a browser (a bot, a test): the token alone decides for it.
- Tokens bound to devices: see components/tokens.py. TokenBindings remembers, per
  process, which device each page token opened first.
- Caps: live devices per user and open sockets per client address (see AdmissionLimits).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from .tokens import Claims

CLOSE_BAD_REQUEST = 4400
CLOSE_BAD_TOKEN = 4401
CLOSE_BAD_ORIGIN = 4403
CLOSE_DEVICE_TAKEN = 4409
CLOSE_TOO_MANY_DEVICES = 4429
CLOSE_TOO_MANY_SOCKETS = 4431
"""WebSocket close codes the widgets explain (see components/widgets/client.js)."""


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    devices_per_user: int = 10
    """Live devices (tabs, including those in their leave grace) one user may hold in one
    server process; one more is closed with CLOSE_TOO_MANY_DEVICES."""
    sockets_per_address: int = 100
    """Open sockets from one client address; one more is closed with CLOSE_TOO_MANY_SOCKETS.
    Behind a reverse proxy every tab shares the proxy's address: raise it there."""
    allowed_origins: frozenset[str] = frozenset()
    """Origins (`https://host[:port]`) allowed besides the socket's own host."""


def origin_allowed(origin: str | None, *, host: str | None, allowed: frozenset[str]) -> bool:
    """May a page at `origin` open a socket on `host` (the request's Host header)?"""
    if origin is None:
        return True  # not a browser: nothing to hijack, the token decides
    if origin.rstrip("/") in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == (host or "").lower()


class TokenBindings:
    """Page-token nonce -> the device it opened first, until the token expires."""

    def __init__(self) -> None:
        self._bound: dict[str, tuple[str, float]] = {}

    def allows(self, claims: Claims, device: str, *, now: float) -> bool:
        if claims.device is not None:
            return claims.device == device
        held = self._bound.get(claims.nonce)
        return held is None or held[0] == device or held[1] < now

    def bind(self, claims: Claims, device: str, *, now: float) -> None:
        if claims.device is None:
            if len(self._bound) > 1024:  # forget expired bindings now and then
                self._bound = {nonce: held for nonce, held in self._bound.items() if held[1] >= now}
            self._bound[claims.nonce] = (device, claims.expires)


class AddressCounter:
    """Open sockets per client address."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def open(self, address: str, *, limit: int) -> bool:
        if self._open[address] >= limit:
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
