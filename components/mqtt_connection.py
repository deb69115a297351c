"""One MQTT connection: the only module that imports paho-mqtt.

A Connection is one paho Client with one client id and one will, to one broker node in
one protocol, used once: a reconnect is a new Connection with a new epoch (client ids
are never reused), maybe to another node. It is driven by a NetworkLoop through paho's external-loop API (`loop_read`, `loop_write`,
`loop_misc` and the socket callbacks), so many connections share one thread.

paho callbacks here only decode and hand off to the handler; they never raise (an
exception would unwind through the loop), never block and never publish-and-wait.
paho return and reason codes become MqttError with the code's name.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TYPE_CHECKING, Protocol as TypingProtocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .broker import BrokerSettings, Endpoint
from .capabilities import Features, ProtocolMemory
from .errors import BrokerUnreachable, MqttError

if TYPE_CHECKING:
    from .network_loop import NetworkLoop

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes when the connection dies without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True
    delay: int = 0
    """MQTT 5 Will Delay Interval in seconds (ignored where the broker has no will delay)."""
    expiry: int | None = None
    """MQTT 5 Message Expiry Interval in seconds (ignored where the broker has none)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    filter: str
    qos: int
    retain_handling: int = 0
    """MQTT 5: 0 send retained, 2 never send retained (3.1.1, and brokers without retain
    handling, always send them)."""


class ConnectionHandler(TypingProtocol):
    def handle_connected(self, conn: Connection) -> None: ...
    def handle_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None: ...
    def handle_lost(self, conn: Connection, reason: str) -> None: ...


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
"""Linux only; elsewhere the delayed ACK stays."""

UNSUPPORTED_PROTOCOL = 132
"""CONNACK reason code (0x84; 3.1.1's return code 1 reads as it) of a broker that does
not speak the protocol version asked for."""


def _check(operation: str, rc: MQTTErrorCode | int) -> None:
    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise MqttError(operation, int(rc), paho.error_string(rc))


READ_CHUNK = 65536
"""Bytes asked of the socket at once (paho asks for one byte, then each length byte, then
the rest of the packet: three system calls a message without this)."""


SERVER_STALL = 12.0
"""Seconds a broker that was sent a PINGREQ has to send anything back (or the keepalive,
if longer) before the connection counts as dead. A NATS node handles a retained publish
inside the connection's read loop, waiting up to 4 s for JetStream, which has no leader
for a while after a node died: three in a row (a device's presence, a receipt, a lease
renewal after a failover) go silent for 12 s. paho gives one keepalive, which with a short
one would drop a live connection (its will fires: a live device shown offline)."""


SLOW_ACK = 2.0
"""Seconds after which the acknowledgement of a retained publish says the broker may not
have kept it: a NATS node whose JetStream store of it timed out (4 s, the stream had no
leader) still delivers it and acknowledges it, but late joiners read what was retained
before. Such a publish goes out again (while its ack stays slow, AGAIN_LIMIT times at
most: an election can outlast one store timeout), unless a newer one to its topic
followed."""
AGAIN_LIMIT = 3


class _Client(paho.Client):
    """paho's Client with pings that confirm publishes (see PublishHandle), a keepalive
    that waits SERVER_STALL for a stalled broker, and two shortcuts on the receive path:
    - no per-message walk of the topic-filter callbacks (`message_callback_add`), which
      the kit never registers: every message goes straight to `on_message` (about a
      tenth of paho's receive time);
    - buffered reads: one `recv` of up to READ_CHUNK serves paho's many small reads
      (a quarter of the network thread under a flood went to `recv` calls). The network
      loop services a connection again while `buffered` says bytes wait here, since its
      selector cannot see them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbox = b""
        self._inbox_at = 0
        self._pings: deque[tuple[float, list[PublishHandle]]] = deque()
        """Per PINGREQ in flight, oldest first: when it was sent and the publishes its
        PINGRESP confirms (none for keepalive pings)."""
        self._pings_lock = threading.Lock()

    def _send_pingreq(self, confirms: Sequence[PublishHandle] = ()) -> MQTTErrorCode:
        with self._pings_lock:
            rc = super()._send_pingreq()
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._pings.append((self._ping_t, list(confirms)))  # paho stamped it
        return rc

    def _handle_pingresp(self) -> MQTTErrorCode:
        rc = super()._handle_pingresp()
        with self._pings_lock:
            _, confirmed = self._pings.popleft() if self._pings else (0.0, [])
        for handle in confirmed:
            handle.confirm(acked=True)
        return rc

    def _check_keepalive(self) -> None:
        """paho's while no PINGREQ is unanswered; then one ping per keepalive until the
        oldest one has waited SERVER_STALL (paho would give up after one keepalive)."""
        with self._pings_lock:
            oldest, newest = (self._pings[0][0], self._pings[-1][0]) if self._pings else (None, None)
        if oldest is None or newest is None or self._state != paho._ConnectionState.MQTT_CS_CONNECTED:
            super()._check_keepalive()
            return
        now = paho.time_func()
        if now - oldest >= max(self._keepalive, SERVER_STALL):
            self._ping_t = oldest  # loop_misc, which calls us, now ends it: keepalive timeout
        elif now - newest >= self._keepalive:
            self._send_pingreq()  # the broker keeps hearing from us, and loop_misc waits

    def unconfirmed(self) -> list[PublishHandle]:
        """Take every publish still waiting for a PINGRESP (the connection is lost)."""
        with self._pings_lock:
            waiting = [handle for _, confirms in self._pings for handle in confirms]
            self._pings.clear()
        return waiting

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        with self._in_callback_mutex:
            self.on_message(self, self._userdata, message)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._inbox_at >= len(self._inbox):
            self._inbox, self._inbox_at = super()._sock_recv(READ_CHUNK), 0  # b"": closed
        start = self._inbox_at
        self._inbox_at = min(start + bufsize, len(self._inbox))
        return self._inbox[start:self._inbox_at]

    @property
    def buffered(self) -> bool:
        return self._inbox_at < len(self._inbox)


class PublishHandle:
    """A publish asked at QoS 1, until the broker acknowledges it: its PUBACK (paho
    tracks it), or, where QoS 1 publishes are off (capabilities.py), the PINGRESP to a
    PINGREQ sent after it: a broker handles one client's packets in order, so that
    PINGRESP comes after the publish was handled. Never `wait()` on the network thread:
    it is the thread that receives the ack."""

    def __init__(self, info: paho.MQTTMessageInfo | None, on_ack: Callable[[], None] | None = None) -> None:
        self._info = info
        self._on_ack = on_ack
        self._confirmed = threading.Event()
        self._acked = False

    @property
    def done(self) -> bool:
        """Acknowledged by the broker (non-blocking: fine on the network thread)."""
        return self._info.is_published() if self._info is not None else self._acked

    def wait(self, timeout: float) -> bool:
        if self._info is None:
            self._confirmed.wait(timeout)
            return self._acked
        try:
            self._info.wait_for_publish(timeout)  # returns None: ask whether it got there
            return self._info.is_published()
        except (RuntimeError, ValueError):  # connection lost or publish refused
            return False

    def confirm(self, *, acked: bool) -> None:
        """The PINGRESP after it arrived (acked), or the connection was lost first."""
        self._acked = acked
        self._confirmed.set()
        if acked and self._on_ack is not None:
            try:
                self._on_ack()
            except Exception:  # noqa: BLE001 - runs inside paho's callbacks
                log.exception("publish acknowledgement handler failed")


class Connection:
    def __init__(
        self,
        settings: BrokerSettings,
        *,
        endpoint: Endpoint,
        v5: bool,
        memory: ProtocolMemory | None = None,
        client_id: str,
        handler: ConnectionHandler,
        network: NetworkLoop,
        will: Will | None = None,
        session_expiry: int = 0,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.client_id = client_id
        self.features = Features.of(settings.capabilities, v5=v5)
        self.v5 = v5
        self._memory = memory
        self.socket_opened = False
        """TCP (and TLS) connected and CONNECT sent."""
        self.connacked = False
        """A CONNACK arrived (accepting or not)."""
        self.refused_v5 = False
        """The broker answered an MQTT 5 CONNECT with 'unsupported protocol version'."""
        self.abandoned = False
        """Given up waiting for its CONNACK (which says nothing about the protocol)."""
        self._handler = handler
        self._network = network
        self._session_expiry = session_expiry
        self._lost = False
        self._lost_lock = threading.Lock()
        self._suback: dict[int, tuple[list[Subscription], Callable[[], None] | None, Callable[[list[str]], None] | None]] = {}
        self._puback: dict[int, Callable[[], None]] = {}
        self._to_confirm: list[PublishHandle] = []
        """Downgraded publishes to confirm with the next PINGREQ (see PublishHandle)."""
        self._to_confirm_lock = threading.Lock()
        self._retained_in_flight: dict[str, float] = {}
        """Topic of each retained publish awaiting its ack: when it was sent (SLOW_ACK)."""
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self.v5 else MQTTProtocolVersion.MQTTv311,
            **({} if self.v5 else {"clean_session": True}),
        )
        client.suppress_exceptions = True  # second line of defence: our callbacks catch too
        client.max_inflight_messages = self.features.inflight
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if endpoint.tls:
            client.tls_set(
                ca_certs=settings.ca_file,
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will is not None:
            will_qos = will.qos if self.features.qos1_publishes else 0
            client.will_set(will.topic, will.payload, qos=will_qos, retain=will.retain, properties=self._will_properties(will))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = client

    @property
    def url(self) -> str:
        return self.endpoint.url

    def _will_properties(self, will: Will) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.WILLMESSAGE)
        if will.delay and self.features.will_delay:
            props.WillDelayInterval = will.delay
        if will.expiry and self.features.message_expiry:
            props.MessageExpiryInterval = will.expiry
        return props

    # -- driven by the network loop ------------------------------------------------
    def open_socket(self) -> None:
        """TCP (and TLS) connect and send CONNECT. Blocking: the loop runs it on a
        connector thread. Raises BrokerUnreachable."""
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry
        try:
            kwargs = {"clean_start": True, "properties": props} if self.v5 else {}
            rc = self._client.connect(self.endpoint.host, self.endpoint.port, self.settings.keepalive, **kwargs)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise BrokerUnreachable("connect", -1, f"{self.url}: {exc}") from None
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BrokerUnreachable("connect", int(rc), f"{self.url}: {paho.error_string(rc)}")

    def socket(self):  # noqa: ANN201 - a socket or SSLSocket
        return self._client.socket()

    def loop_read(self) -> bool:
        """Read (at most) one packet; False when nothing could be read (the socket, and
        TLS's buffer, are drained). paho stamps every successful read, which tells."""
        before = self._client._last_bytes_received
        self._client.loop_read()
        return self._client._last_bytes_received != before

    @property
    def buffered(self) -> bool:
        """Received bytes wait in the client's buffer (or TLS's), which no selector sees."""
        sock = self._client.socket()
        return self._client.buffered or bool(sock is not None and hasattr(sock, "pending") and sock.pending())

    def acknowledge_promptly(self) -> None:
        """Have the kernel ACK what arrives at once rather than delay the ACK (up to 40
        ms). Brokers such as Mosquitto leave Nagle's algorithm on, so a second small
        packet they send waits for our ACK of the first; a client with nothing to send
        delays that ACK, and an exchange of two small packets stalls 40 ms (measured:
        a first snapshot in 90 ms instead of 8). Linux's TCP_QUICKACK does not stick:
        the loop calls this on every wake-up of the socket."""
        if _QUICKACK is not None:
            try:
                self._client.socket().setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except (OSError, AttributeError):
                pass  # closed meanwhile

    def loop_write(self) -> None:
        self._client.loop_write()

    def loop_misc(self) -> None:
        self._client.loop_misc()

    def want_write(self) -> bool:
        return self._client.want_write()

    # -- operations (thread-safe in paho; subscribe on the loop thread) --------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        expiry: int | None = None,
        on_ack: Callable[[], None] | None = None,
        again_if_slow: bool = False,
    ) -> PublishHandle:
        """Publish; at QoS 1 the handle (and `on_ack`, on the loop thread) says when the
        broker acknowledged it. Where QoS 1 publishes are off it goes at QoS 0 and a
        PINGREQ sent after it (one per loop pass) confirms it. Call on the loop thread
        when there is an `on_ack`, so the ack cannot beat its record. With
        `again_if_slow` (for a topic only this connection writes: a device's presence, a
        process's lease), a retained one published on the loop thread is published
        again if its ack is slow (SLOW_ACK)."""
        if retain and qos > 0 and again_if_slow and self._network.in_loop_thread():
            on_ack = self._again_if_slow(topic, payload, expiry, on_ack, tries=AGAIN_LIMIT)
        props = None
        if self.features.message_expiry and expiry:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
        if on_ack is not None and qos > 0:
            self._network.assert_loop_thread()
        downgraded = qos > 0 and not self.features.qos1_publishes
        info = self._client.publish(topic, payload, qos=0 if downgraded else qos, retain=retain, properties=props)
        _check(f"publish to {topic}", info.rc)
        if not downgraded:
            if on_ack is not None and qos > 0:
                self._puback[info.mid] = on_ack
            return PublishHandle(info)
        handle = PublishHandle(None, on_ack)
        with self._to_confirm_lock:
            self._to_confirm.append(handle)
            first = len(self._to_confirm) == 1
        if first:
            self._network.call_soon(self._ping_to_confirm)
        return handle

    def _again_if_slow(self, topic: str, payload: bytes, expiry: int | None, on_ack: Callable[[], None] | None, *, tries: int) -> Callable[[], None]:
        sent = time.monotonic()
        self._retained_in_flight[topic] = sent

        def acked() -> None:
            if self._retained_in_flight.get(topic) == sent:
                del self._retained_in_flight[topic]
                if time.monotonic() - sent >= SLOW_ACK and tries > 0 and not self._lost:
                    log.info("%s: %s acknowledged after %.1f s: published again", self.client_id, topic, time.monotonic() - sent)
                    again = self._again_if_slow(topic, payload, expiry, None, tries=tries - 1)
                    self.publish(topic, payload, qos=1, retain=True, expiry=expiry, on_ack=again)
            if on_ack is not None:
                on_ack()

        return acked

    def _ping_to_confirm(self) -> None:
        with self._to_confirm_lock:
            handles, self._to_confirm = self._to_confirm, []
        if self._lost or self._client._send_pingreq(handles) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            for handle in handles:
                handle.confirm(acked=False)

    def subscribe(
        self,
        subscriptions: Sequence[Subscription],
        *,
        on_ack: Callable[[], None] | None = None,
        on_refused: Callable[[list[str]], None] | None = None,
    ) -> None:
        """Subscribe; `on_ack` runs on the loop thread when SUBACK arrives, or, when the
        broker refused some filters and `on_refused` is given, `on_refused(refused)`
        instead, each entry naming a filter and the broker's reason (a refused
        subscription is never taken for success). A refused QoS 1 filter is first
        subscribed again at QoS 0 (and, through `memory`, every later one:
        capabilities.py). Call on the loop thread, so the SUBACK cannot be handled before
        its mid is known."""
        self._network.assert_loop_thread()
        if self._memory is not None and not self._memory.qos1_subscriptions:
            subscriptions = [replace(s, qos=0) for s in subscriptions]
        if self.v5:
            handling = self.features.retain_handling
            topics = [(s.filter, SubscribeOptions(qos=s.qos, retainHandling=s.retain_handling if handling else 0)) for s in subscriptions]
        else:
            topics = [(s.filter, s.qos) for s in subscriptions]
        rc, mid = self._client.subscribe(topics)
        _check("subscribe", rc)
        if mid is not None:
            self._suback[mid] = (list(subscriptions), on_ack, on_refused)

    def unsubscribe(self, filters: Sequence[str]) -> None:
        rc, _ = self._client.unsubscribe(list(filters))
        _check("unsubscribe", rc)

    def disconnect(self) -> None:
        """Clean DISCONNECT: the broker discards the will (paho sends none either)."""
        self._client.disconnect()

    def abandon(self, reason: str) -> None:
        """Give up on a connection that never got its CONNACK: the handler hears it as
        lost (once) and the socket is closed. Loop thread."""
        self.abandoned = True
        self._mark_lost(f"{self.url}: {reason}")
        self._client.disconnect()

    # -- paho callbacks: decode and hand off, never raise ----------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connacked = True
        try:
            if reason_code.is_failure:
                self.refused_v5 = self.v5 and reason_code.value == UNSUPPORTED_PROTOCOL
                self._mark_lost(f"{self.url} refused the connection: {reason_code}")
            else:
                receive_maximum = getattr(properties, "ReceiveMaximum", None) if self.v5 else None
                if receive_maximum:  # the broker's limit on our QoS 1 publishes in flight
                    self.features = Features.of(self.settings.capabilities, v5=True, receive_maximum=receive_maximum)
                    client._max_inflight_messages = self.features.inflight  # the setter refuses once connected
                self._handler.handle_connected(self)
        except Exception:  # noqa: BLE001 - a callback must never raise into paho
            log.exception("connected handler failed for %s", self.client_id)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._mark_lost(f"{self.url}: disconnected: {reason_code}" if self.connacked else f"{self.url} closed the connection before CONNACK")

    def _mark_lost(self, reason: str) -> None:
        # paho may report one loss twice (a refused CONNACK, then the socket close);
        # the handler hears of it once.
        with self._lost_lock:
            if self._lost:
                return
            self._lost = True
        with self._to_confirm_lock:
            unsettled = [*self._to_confirm, *self._client.unconfirmed()]
            self._to_confirm = []
        for handle in unsettled:
            handle.confirm(acked=False)
        try:
            self._handler.handle_lost(self, reason)
        except Exception:  # noqa: BLE001
            log.exception("lost handler failed for %s", self.client_id)

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:  # noqa: ANN001
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:  # MQTT requires UTF-8; such a name parses as foreign
                topic = message._topic.decode("utf-8", "replace")
            self._handler.handle_message(self, topic, message.payload, bool(message.retain))
        except Exception:  # noqa: BLE001
            log.exception("message handler failed for %s", self.client_id)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        subscriptions, on_ack, on_refused = self._suback.pop(mid, ([], None, None))
        refused_codes = [(s, rc) for s, rc in zip(subscriptions, reason_codes) if getattr(rc, "is_failure", False)]
        refused = [s for s, _ in refused_codes]
        try:
            if refused and self._memory is not None and all(s.qos > 0 for s in refused):
                if self._memory.refuse_qos1():
                    log.warning("%s refused a QoS 1 subscription: subscribing at QoS 0 (see docs/BROKERS.md)", self.url)
                self.subscribe([replace(s, qos=0) for s in refused], on_ack=on_ack, on_refused=on_refused)
                return
            named = [f"{s.filter!r} ({rc}, code {int(rc.value)})" for s, rc in refused_codes]
            if refused:
                log.warning("%s: subscription refused: %s", self.client_id, ", ".join(named))
            if refused and on_refused is not None:
                on_refused(named)
            elif on_ack is not None:
                on_ack()
        except Exception:  # noqa: BLE001
            log.exception("SUBACK handler failed for %s", self.client_id)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        on_ack = self._puback.pop(mid, None)
        if on_ack is not None:
            try:
                on_ack()
            except Exception:  # noqa: BLE001
                log.exception("PUBACK handler failed for %s", self.client_id)

    def _on_socket_open(self, client, userdata, sock) -> None:  # noqa: ANN001
        self.socket_opened = True  # before the loop watches it, so a close is seen after
        self._network.watch(self, sock)

    def _on_socket_close(self, client, userdata, sock) -> None:  # noqa: ANN001
        self._network.unwatch(sock)

    def _on_socket_register_write(self, client, userdata, sock) -> None:  # noqa: ANN001
        self._network.want_write(sock, True)

    def _on_socket_unregister_write(self, client, userdata, sock) -> None:  # noqa: ANN001
        self._network.want_write(sock, False)
