"""The kit's exceptions, one tree so callers can catch as broadly as they need:

    PresenceKitError
    ├── InvalidId           (also ValueError)  an org/room/user/device id outside ^[A-Za-z0-9_.-]{1,64}$
    │                                          (or a field id outside ^[A-Za-z0-9_-]{1,64}$)
    │   └── InvalidMessageId                   a chat message id that is not a ULID, or one stamped in the future
    ├── InvalidBrokerUrl    (also ValueError)  a broker URL that is not mqtt[s]://host[:port]
    ├── InvalidHistoryStore (also ValueError)  a history URL or table the kit cannot use as written
    │                                          (its text shows the URL with the password redacted)
    ├── InvalidPayload      (also ValueError)  a wire payload that breaks its JSON Schema
    ├── InvalidToken                           a tab's token that is malformed, forged, expired
    │                                          or bound to another device
    ├── ConfigError                            an app file that is unreadable or invalid
    │   │                                      (its `problems`: ConfigProblem, FILE:LINE:COL: $.path: message)
    │   └── TokenKeyError                      PRESENCE_TOKEN_KEY is too short
    ├── MqttError                              a paho return or reason code, named
    │   └── BrokerUnreachable                  the TCP/TLS connection or CONNACK failed
    └── HistoryUnavailable                     the chat history store cannot be reached or failed a read
                                               or write; a message it was given is not stored
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class PresenceKitError(Exception):
    """Base class of every error the kit raises on purpose."""


class InvalidId(PresenceKitError, ValueError):
    """An id that could become an MQTT wildcard, a separator or another user's topic."""


class InvalidMessageId(InvalidId):
    """A chat message id that is not a ULID (26 Crockford base32 characters, at most
    7ZZZZZZZZZZZZZZZZZZZZZZZZZ), or stamped in the future (message_ids.MAX_CLOCK_SKEW):
    it would sort after every real message for as long as it lives."""


class InvalidBrokerUrl(PresenceKitError, ValueError):
    """A broker URL the kit cannot connect to as written."""


class InvalidHistoryStore(PresenceKitError, ValueError):
    """A history URL (sqlite:///PATH or postgresql://...) or table name the kit cannot use
    as written, or a backend whose driver is not installed. Its text never shows a password."""


class InvalidPayload(PresenceKitError, ValueError):
    """A wire payload that is not JSON or does not match its published schema."""


class RoomRefused(PresenceKitError):
    """A room a page asked to show that the app file does not allow, or kit.authorize refused."""


class InvalidToken(PresenceKitError):
    """A tab's token that is malformed, forged, expired or bound to another device."""


class TokenExpired(InvalidToken):
    """A token that was ours but is past its time (a tab asks its page for a fresh one)."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with an app file, shown as `FILE:LINE:COL: $.json.path: message`
    (a warning as `FILE:LINE:COL: $.json.path: warning: message`)."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        warning = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {warning}{self.message}"


class ConfigError(PresenceKitError):
    """An app file that cannot be read or does not validate; `str()` lists every problem.

    `problems` holds them one by one, as ConfigProblem records where a position is known.
    """

    def __init__(self, *problems: ConfigProblem | str) -> None:
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(map(str, self.problems))


class TokenKeyError(ConfigError):
    """The key that signs tabs' tokens is unusable; the message never shows the key."""


class MqttError(PresenceKitError):
    """An MQTT operation failed; the text names paho's code and its reason."""

    def __init__(self, operation: str, code: int, reason: str) -> None:
        super().__init__(f"{operation} failed: {reason} (code {code})")
        self.operation = operation
        self.code = code
        self.reason = reason


class BrokerUnreachable(MqttError):
    """No MQTT session could be established with the broker."""


class HistoryUnavailable(PresenceKitError):
    """The chat history store could not be reached, or a read or write failed. A message
    whose write raised this was not stored (and, when sent through a device, not
    published): the sender can keep it and try again. The text never shows a password."""
