"""How to reach the broker: one URL or a list of nodes, credentials, TLS, protocol
version, keepalive and what the broker can do (capabilities.py).

A list of URLs is a cluster: every connection tries them in order and fails over to the
next one when one is unreachable or drops (reconnecting.py). `mqtt://a:1883,mqtt://b:1883`
and `["mqtt://a:1883", "mqtt://b:1883"]` are the same list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

from .capabilities import BrokerCapabilities
from .errors import InvalidBrokerUrl

Protocol = Literal["5", "3.1.1"]
_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
MAX_URLS = 16


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker node."""

    host: str
    port: int = 1883
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise InvalidBrokerUrl("broker host is empty")
        if not 0 < self.port < 65536:
            raise InvalidBrokerUrl(f"broker port {self.port} is not in 1-65535")

    @property
    def url(self) -> str:
        """The URL without credentials (safe to log and show)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: Protocol = "5"
    """"5": MQTT 5 where the broker accepts it, 3.1.1 where it refuses 5 (detected at
    connect); "3.1.1": never try 5."""
    keepalive: int = 30
    topic_prefix: str = ""
    failover: tuple[Endpoint, ...] = ()
    """Further nodes of the same broker cluster, tried in order after host:port."""
    capabilities: BrokerCapabilities = field(default_factory=BrokerCapabilities)

    def __post_init__(self) -> None:
        Endpoint(self.host, self.port, self.tls)  # checks host and port
        if self.protocol not in ("5", "3.1.1"):
            raise InvalidBrokerUrl(f"MQTT protocol must be '5' or '3.1.1', not {self.protocol!r}")
        if not 2 <= self.keepalive <= 65535:
            raise InvalidBrokerUrl(f"keepalive must be 2-65535 seconds, not {self.keepalive}")
        if len(self.endpoints) > MAX_URLS:
            raise InvalidBrokerUrl(f"at most {MAX_URLS} broker URLs, not {len(self.endpoints)}")
        if len(set(self.endpoints)) != len(self.endpoints):
            raise InvalidBrokerUrl(f"a broker URL is listed twice in {self.url}")
        if self.capabilities.retained_replicated is False and self.failover:
            raise InvalidBrokerUrl(
                "capabilities say the broker keeps retained messages per node (retained_replicated: false), so "
                f"watchers on different nodes would show different orgs: give one node's URL, not {len(self.endpoints)}"
            )

    @classmethod
    def from_url(
        cls,
        url: str | Sequence[str],
        *,
        protocol: Protocol = "5",
        keepalive: int = 30,
        topic_prefix: str = "",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        capabilities: BrokerCapabilities | None = None,
    ) -> BrokerSettings:
        """Parse `mqtt://[user[:password]@]host[:port]` (`mqtts://` for TLS), or a list of
        them (a sequence, or one string with commas) for the nodes of a cluster, tried in
        order. Credentials given as options win over those in the URLs, which must agree."""
        urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else [str(u).strip() for u in url]
        if not urls or not all(urls):
            shown = ", ".join(redact_url(u) for u in urls)
            raise InvalidBrokerUrl(f"bad broker URL list {shown!r}: an empty entry")
        parsed = [_parse(u) for u in urls]
        credentials = {(user, pw) for _, user, pw in parsed if user is not None or pw is not None}
        if len(credentials) > 1:
            raise InvalidBrokerUrl("the broker URLs carry different credentials: give them once, as options")
        url_user, url_password = next(iter(credentials), (None, None))
        first, *rest = (endpoint for endpoint, _, _ in parsed)
        return cls(
            host=first.host,
            port=first.port,
            tls=first.tls,
            username=username or url_user,
            password=password or url_password,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            protocol=protocol,
            keepalive=keepalive,
            topic_prefix=topic_prefix,
            failover=tuple(rest),
            capabilities=capabilities or BrokerCapabilities(),
        )

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every node, in the order connections try them."""
        return (Endpoint(self.host, self.port, self.tls), *self.failover)

    @property
    def url(self) -> str:
        """The URLs without credentials, comma-separated (safe to log; from_url reads it)."""
        return ",".join(endpoint.url for endpoint in self.endpoints)


def _parse(url: str) -> tuple[Endpoint, str | None, str | None]:
    shown = redact_url(url)  # errors never print a password
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidBrokerUrl(f"bad broker URL {shown!r}: {str(exc).replace(url, shown)}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise InvalidBrokerUrl(f"bad broker URL {shown!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise InvalidBrokerUrl(f"bad broker URL {shown!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidBrokerUrl(f"bad broker URL {shown!r}: only scheme, credentials, host and port are allowed")
    endpoint = Endpoint(parts.hostname, _DEFAULT_PORTS[parts.scheme] if port is None else port, parts.scheme in ("mqtts", "ssl"))
    return (
        endpoint,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")


def redact_url(url: str) -> str:
    """`url` with any credentials replaced by `***`, fit to print even when malformed."""
    return _CREDENTIALS.sub(lambda m: f"{m.group(1)}***@", url.strip(), count=1)
