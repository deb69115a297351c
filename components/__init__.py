"""Real-time presence over MQTT: a shared session with last wills, retained state and
epochs, and (later) Streamlit widgets on top. The public API is `__all__`."""

from .broker import BrokerSettings
from .device import Device
from .errors import (
    BrokerUnreachable,
    ConfigError,
    InvalidBrokerUrl,
    InvalidId,
    InvalidPayload,
    MqttError,
    PresenceKitError,
)
from .events import (
    ChatMessage,
    ChatReceived,
    Cursor,
    CursorMoved,
    Event,
    PresenceChanged,
    ReactionReceived,
    ReceiptMoved,
    RoomSnapshot,
    Snapshot,
    SnapshotComplete,
    TypingChanged,
)
from .ids import check_id
from .presence import Status, UserPresence
from .session import PresenceSession, SessionStats
from .topics import Topic, TopicScheme

__all__ = [
    "BrokerSettings",
    "BrokerUnreachable",
    "ChatMessage",
    "ChatReceived",
    "ConfigError",
    "Cursor",
    "CursorMoved",
    "Device",
    "Event",
    "InvalidBrokerUrl",
    "InvalidId",
    "InvalidPayload",
    "MqttError",
    "PresenceChanged",
    "PresenceKitError",
    "PresenceSession",
    "ReactionReceived",
    "ReceiptMoved",
    "RoomSnapshot",
    "SessionStats",
    "Snapshot",
    "SnapshotComplete",
    "Status",
    "Topic",
    "TopicScheme",
    "TypingChanged",
    "UserPresence",
    "check_id",
]
