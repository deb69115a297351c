"""The typed settings an app file turns into: what the session and the widgets read.

An app file section that is not a widget is a `*Section` (`BrokerSection` is the file's
`broker:` as written); a widget's options are its `*Settings`. Where and how one MQTT
connection goes is `broker.BrokerSettings`, the connection side, which bots and agents
build themselves and the kit builds from a `BrokerSection` (`BrokerSection.connection`).

Frozen dataclasses with no defaults of their own. Every default lives in
`schemas/app.schema.json` and is filled in from there by the loader
(`components.app_file`), so a field here is None only where the schema has no default
and the file left the key out. Field names are the YAML keys, one for one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, get_args

from .broker import BrokerSettings
from .capabilities import BrokerCapabilities

IdentitySource = Literal["streamlit_login", "header", "query_param"]
MqttProtocol = Literal["5", "3.1.1"]
PageLayout = Literal["centered", "wide"]
Locale = Literal["en", "de", "fr", "es", "pt"]
Label = str | Mapping[str, str]
"""A text of the widgets' own (labels): a template, or its plural forms by CLDR category."""


@dataclass(frozen=True)
class TlsSection:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None


@dataclass(frozen=True)
class BrokerSection:
    """The app file's `broker:`: the connection's settings (`connection()`) and the
    session's timings (leave grace, lease, last-seen retention)."""

    url: str | tuple[str, ...] | None  # several: the nodes of one cluster; None: start an embedded broker
    username: str | None
    password: str | None = field(repr=False)
    tls: TlsSection | None
    keepalive: int
    protocol: MqttProtocol
    topic_prefix: str
    leave_grace: float
    lease: float
    capabilities: BrokerCapabilities
    last_seen_retention: int

    @property
    def embedded(self) -> bool:
        """True when the app file names no broker and the kit starts its own."""
        return self.url is None

    def connection(self, url: str | Sequence[str], *, protocol: MqttProtocol | None = None) -> BrokerSettings:
        """The connection side: `url` (one, or several: the nodes of a cluster; the
        file's own, `MQTT_URL` or an embedded broker's) with this section's
        credentials, TLS files and MQTT options."""
        tls = self.tls
        return BrokerSettings.from_url(
            url,
            protocol=protocol or self.protocol,
            keepalive=self.keepalive,
            topic_prefix=self.topic_prefix,
            username=self.username,
            password=self.password,
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
            key_file=str(tls.key_file) if tls and tls.key_file else None,
            capabilities=self.capabilities,
        )


@dataclass(frozen=True)
class IdentitySection:
    source: IdentitySource
    header: str | None  # set exactly when source is "header"


@dataclass(frozen=True)
class RoomsOnDemandSection:
    allow: tuple[str, ...]
    query_param: str | None  # None: no query parameter chooses the room
    linger: float


@dataclass(frozen=True)
class LimitsSection:
    devices_per_user: int
    sockets_per_address: int


@dataclass(frozen=True)
class AccessSection:
    allowed_origins: tuple[str, ...]
    avatar_hosts: tuple[str, ...]


@dataclass(frozen=True)
class HistorySection:
    url: str = field(repr=False)  # may hold a password (from the environment)
    """A relative SQLite path is already resolved against the app file's folder."""
    keep: int
    """Seconds."""
    table: str


@dataclass(frozen=True)
class PageSettings:
    title: str | None  # None: the org id
    icon: str | None  # None: Streamlit's own
    layout: PageLayout


@dataclass(frozen=True)
class PresenceListSettings:
    type: ClassVar[str] = "presence_list"
    id: str | None  # None: named by its position in the file
    room: str | None  # None: everyone in the org
    counter_above: int
    counter_hysteresis: int
    away_after: float
    show_devices: bool
    title: str | None


@dataclass(frozen=True)
class TypingIndicatorSettings:
    type: ClassVar[str] = "typing_indicator"
    id: str | None  # None: named by its position in the file
    room: str
    ttl: float


@dataclass(frozen=True)
class CursorOverlaySettings:
    type: ClassVar[str] = "cursor_overlay"
    id: str | None  # None: named by its position in the file
    room: str
    region: str | None  # None: the whole page
    rate_hz: float
    hide_after: float


@dataclass(frozen=True)
class ReadReceiptsSettings:
    type: ClassVar[str] = "read_receipts"
    id: str | None  # None: named by its position in the file
    room: str
    private: bool
    collapse_above: int


@dataclass(frozen=True)
class ReactionsSettings:
    type: ClassVar[str] = "reactions"
    id: str | None  # None: named by its position in the file
    room: str
    emojis: tuple[str, ...]
    burst_window_ms: int
    max_per_second: int


@dataclass(frozen=True)
class ChatPanelSettings:
    type: ClassVar[str] = "chat_panel"
    id: str | None  # None: named by its position in the file
    room: str
    history: int
    typing_ttl: float
    private_receipts: bool
    collapse_above: int
    height: int | Literal["auto"]


@dataclass(frozen=True)
class FieldPresenceSettings:
    type: ClassVar[str] = "field_presence"
    id: str | None  # None: named by its position in the file
    room: str
    fields: tuple[str, ...] | None  # None: every keyed input of the page
    lock: bool
    follow: bool


WidgetSettings = (
    PresenceListSettings
    | TypingIndicatorSettings
    | CursorOverlaySettings
    | ReadReceiptsSettings
    | ReactionsSettings
    | ChatPanelSettings
    | FieldPresenceSettings
)

# The settings class of each widget `type`, in the schema's order (a test checks it).
WIDGET_SETTINGS: dict[str, type[WidgetSettings]] = {cls.type: cls for cls in get_args(WidgetSettings)}


@dataclass(frozen=True)
class AppSettings:
    version: int
    broker: BrokerSection
    org: str
    rooms: tuple[str, ...]
    rooms_on_demand: RoomsOnDemandSection
    identity: IdentitySection
    limits: LimitsSection
    access: AccessSection
    history: HistorySection
    page: PageSettings
    locale: Locale | None  # None: the browser's language (else English)
    labels: Mapping[str, Label]  # texts of the app's own, by key (components.widget_texts)
    widgets: tuple[WidgetSettings, ...]
