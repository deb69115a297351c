"""How to reach the broker: URL, credentials, TLS, protocol version and keepalive."""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import InvalidBrokerUrl

Protocol = Literal["5", "3.1.1"]
_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


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
    keepalive: int = 30
    topic_prefix: str = ""

    def __post_init__(self) -> None:
        if not self.host:
            raise InvalidBrokerUrl("broker host is empty")
        if not 0 < self.port < 65536:
            raise InvalidBrokerUrl(f"broker port {self.port} is not in 1-65535")
        if self.protocol not in ("5", "3.1.1"):
            raise InvalidBrokerUrl(f"MQTT protocol must be '5' or '3.1.1', not {self.protocol!r}")
        if not 2 <= self.keepalive <= 65535:
            raise InvalidBrokerUrl(f"keepalive must be 2-65535 seconds, not {self.keepalive}")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        protocol: Protocol = "5",
        keepalive: int = 30,
        topic_prefix: str = "",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> BrokerSettings:
        """Parse `mqtt://[user[:password]@]host[:port]` (`mqtts://` for TLS). Credentials
        given as options win over those in the URL."""
        shown = redact_url(url)
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
        return cls(
            host=parts.hostname,
            port=_DEFAULT_PORTS[parts.scheme] if port is None else port,
            tls=parts.scheme in ("mqtts", "ssl"),
            username=username or (unquote(parts.username) if parts.username else None),
            password=password or (unquote(parts.password) if parts.password else None),
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            protocol=protocol,
            keepalive=keepalive,
            topic_prefix=topic_prefix,
        )

    @property
    def url(self) -> str:
        """The URL without credentials (safe to log and show)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")


def redact_url(url: str) -> str:
    """`url` with any credentials replaced by `***`, fit to print even when malformed."""
    return _CREDENTIALS.sub(lambda m: f"{m.group(1)}***@", url.strip(), count=1)
