"""Real-time presence over MQTT: a shared session with last wills, retained state and
epochs, and Streamlit widgets on top. The public API is `__all__`.

Names are imported from their modules on first use (PEP 562), so `import components`
to check an app file (`load_app_text`) starts no thread and imports neither paho nor
Streamlit; `components.PresenceSession` or `components.PresenceKit` bring them in.
"""

import importlib

# Each public name and the module (components.<module>) that defines it.
_EXPORTS = {
    "AppFileCheck": "app_file",
    "check_app_file": "app_file",
    "check_app_text": "app_file",
    "load_app_file": "app_file",
    "load_app_text": "app_file",
    "BrokerSettings": "broker",
    "Endpoint": "broker",
    "BrokerCapabilities": "capabilities",
    "Device": "device",
    "BrokerUnreachable": "errors",
    "ConfigError": "errors",
    "ConfigProblem": "errors",
    "HistoryUnavailable": "errors",
    "InvalidBrokerUrl": "errors",
    "InvalidHistoryStore": "errors",
    "InvalidId": "errors",
    "InvalidMessageId": "errors",
    "InvalidPayload": "errors",
    "InvalidToken": "errors",
    "MqttError": "errors",
    "PresenceKitError": "errors",
    "TokenExpired": "errors",
    "TokenKeyError": "errors",
    "ChatMessage": "events",
    "ChatReceived": "events",
    "Cursor": "events",
    "CursorMoved": "events",
    "Event": "events",
    "FieldsChanged": "events",
    "PresenceChanged": "events",
    "ReactionReceived": "events",
    "ReceiptMoved": "events",
    "RoomSnapshot": "events",
    "Snapshot": "events",
    "TypingChanged": "events",
    "FieldEntry": "fields",
    "Focus": "fields",
    "HistoryStore": "history",
    "history_store_for": "history",
    "open_history_store": "history",
    "HistoryStats": "history_writer",
    "Identity": "identity",
    "check_id": "ids",
    "PresenceKit": "kit",
    "Status": "presence",
    "UserPresence": "presence",
    "PresenceSession": "session",
    "SessionStats": "session",
    "AppSettings": "settings",
    "BrokerSection": "settings",
    "ChatPanelSettings": "settings",
    "CursorOverlaySettings": "settings",
    "FieldPresenceSettings": "settings",
    "HistorySection": "settings",
    "IdentitySection": "settings",
    "PageSettings": "settings",
    "PresenceListSettings": "settings",
    "ReactionsSettings": "settings",
    "ReadReceiptsSettings": "settings",
    "TlsSection": "settings",
    "TypingIndicatorSettings": "settings",
    "WidgetSettings": "settings",
    "Topic": "topics",
    "TopicScheme": "topics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
