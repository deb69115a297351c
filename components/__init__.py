"""Real-time presence over MQTT: a shared session with last wills, retained state and
epochs, and (later) Streamlit widgets on top. The public API is `__all__`."""

from .app_file import load_app_file, load_app_text
from .broker import BrokerSettings
from .device import Device
from .errors import (
    BrokerUnreachable,
    ConfigError,
    ConfigProblem,
    HistoryUnavailable,
    InvalidBrokerUrl,
    InvalidHistoryStore,
    InvalidId,
    InvalidMessageId,
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
from .history import HistoryStore, history_store_for, open_history_store
from .history_writer import HistoryStats
from .ids import check_id
from .presence import Status, UserPresence
from .session import PresenceSession, SessionStats
from .settings import (
    AppSettings,
    BrokerConfig,
    ChatPanelSettings,
    CursorOverlaySettings,
    HistoryConfig,
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
    "Event",
    "HistoryConfig",
    "HistoryStats",
    "HistoryStore",
    "HistoryUnavailable",
    "IdentityConfig",
    "InvalidBrokerUrl",
    "InvalidHistoryStore",
    "InvalidId",
    "InvalidMessageId",
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
    "history_store_for",
    "load_app_file",
    "load_app_text",
    "open_history_store",
]
