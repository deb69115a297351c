"""Real-time presence over MQTT: a shared session with last wills, retained state and
epochs, and (later) Streamlit widgets on top. The public API is `__all__`."""

from .app_file import load_app_file, load_app_text
from .broker import BrokerSettings, Endpoint
from .capabilities import BrokerCapabilities
from .device import Device
from .errors import (
    BrokerUnreachable,
    ConfigError,
    ConfigProblem,
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
    TypingChanged,
)
from .ids import check_id
from .presence import Status, UserPresence
from .session import PresenceSession, SessionStats
from .settings import (
    AppSettings,
    BrokerConfig,
    ChatPanelSettings,
    CursorOverlaySettings,
    IdentityConfig,
    PresenceListSettings,
    ReactionsSettings,
    ReadReceiptsSettings,
    TlsConfig,
    TypingIndicatorSettings,
    WidgetSettings,
)
from .topics import Topic, TopicScheme

__all__ = [
    "AppSettings",
    "BrokerCapabilities",
    "BrokerConfig",
    "BrokerSettings",
    "BrokerUnreachable",
    "ChatMessage",
    "ChatPanelSettings",
    "ChatReceived",
    "ConfigError",
    "ConfigProblem",
    "Cursor",
    "CursorMoved",
    "CursorOverlaySettings",
    "Device",
    "Endpoint",
    "Event",
    "IdentityConfig",
    "InvalidBrokerUrl",
    "InvalidId",
    "InvalidPayload",
    "MqttError",
    "PresenceChanged",
    "PresenceKitError",
    "PresenceListSettings",
    "PresenceSession",
    "ReactionReceived",
    "ReactionsSettings",
    "ReadReceiptsSettings",
    "ReceiptMoved",
    "RoomSnapshot",
    "SessionStats",
    "Snapshot",
    "Status",
    "TlsConfig",
    "Topic",
    "TopicScheme",
    "TypingChanged",
    "TypingIndicatorSettings",
    "UserPresence",
    "WidgetSettings",
    "check_id",
    "load_app_file",
    "load_app_text",
]
