"""What a broker can do, configured or detected, never assumed.

Brokers differ in exactly the features presence rests on (docs/BROKERS.md has the
matrix). Each capability is configured (app file `broker.capabilities`, or
`BrokerSettings(capabilities=...)`) or, left as None, detected:

- MQTT 5: every connection tries 5 first (unless `protocol: "3.1.1"`); a broker that
  refuses it (a CONNACK saying so, or closing the socket before any CONNACK, as RabbitMQ
  3.10 and NATS 2.9 do) is spoken to in 3.1.1 from then on (mqtt_connection.py).
- will delay, message expiry, retain handling: part of MQTT 5, so present on an MQTT 5
  connection unless configured false for a broker that accepts 5 but ignores them.
  Without will delay a crash shows offline at once and a network-level reconnect shows a
  short offline (no flicker protection); without message expiry old offline devices are
  cleared by observers only; without retain handling the live subscription repeats
  retained messages (equal to what is held: harmless).
- retained messages delivered to wildcard subscriptions: the observer checks it at every
  snapshot (observer.py). RabbitMQ 3.10 delivers none, so a late joiner would silently
  see an empty org: the observer refuses instead (REFUSE_WILDCARDS below).
- retained messages replicated across nodes: checked by the observer when the session
  has more than one URL (a retained marker published on one node, read on another). Not
  replicated (RabbitMQ keeps them per node): refused, since watchers on different nodes
  would show different orgs (REFUSE_PER_NODE below).
- QoS 1 subscriptions: a broker that refuses one (a NATS node creates a JetStream
  consumer for each and, with a node of its cluster down, times out doing so) gets
  that filter, and every later one of the session, at QoS 0. The live stream may then
  lose a message under load; a lost offline is bounded by the lease (leases.py).
- QoS 1 publishes: on by default. Configured false for a broker where a QoS 1 publish
  costs more than it gives: NATS 2.9 stores each one in a JetStream stream for QoS 1
  subscribers, and when that stream has no leader (a node died) for 4 s it closes the
  publisher's connection, whose will then fires (a live device shown offline). Then
  every publish goes at QoS 0 (the will too) and, where the kit needs to know the
  broker has one (a clean leave, a lease renewal, the snapshot's retained marker), a
  PINGREQ follows it: a broker handles one client's packets in order, so the PINGRESP
  says the publish was handled (mqtt_connection.py).
- receive maximum (how many QoS 1 publishes the broker takes in flight from one client):
  read from an MQTT 5 CONNACK; the kit keeps its in-flight window at most that.

No sockets; ProtocolMemory is the one piece of shared state (a lock, no thread).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

DEFAULT_INFLIGHT = 20
"""paho's in-flight window; larger windows were measured slower (DESIGN.md)."""

REFUSE_WILDCARDS = (
    "the broker at {url} does not deliver retained messages to wildcard subscriptions "
    "(RabbitMQ's MQTT plugin does not), so a late joiner would see an empty org: "
    "presence is refused on this broker (see docs/BROKERS.md)"
)
REFUSE_PER_NODE = (
    "the broker keeps retained messages per node (a marker published on {first} did not "
    "reach {second}), so watchers on different nodes would show different orgs: "
    "presence is refused across these nodes; give one node's URL (see docs/BROKERS.md)"
)


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """Capabilities as configured; None means detect (see the module docstring)."""

    will_delay: bool | None = None
    message_expiry: bool | None = None
    retain_handling: bool | None = None
    retained_to_wildcards: bool | None = None
    retained_replicated: bool | None = None
    qos1_subscriptions: bool | None = None
    qos1_publishes: bool | None = None
    receive_maximum: int | None = None

    def __post_init__(self) -> None:
        if self.receive_maximum is not None and not 1 <= self.receive_maximum <= 65535:
            raise ValueError(f"receive_maximum must be 1-65535, not {self.receive_maximum}")


    @classmethod
    def parse(cls, items: list[str]) -> BrokerCapabilities:
        """`NAME=VALUE` pairs (the CLI's --capability): true, false, null or a number."""
        values: dict[str, bool | int | None] = {}
        known = {f for f in cls.__slots__}  # type: ignore[attr-defined]
        for item in items:
            name, sep, text = item.partition("=")
            words = {"true": True, "false": False, "null": None}
            if not sep or name not in known or not (text in words or text.isdigit()):
                raise ValueError(f"capability {item!r}: write NAME=true|false|null|NUMBER, NAME one of {', '.join(sorted(known))}")
            values[name] = words[text] if text in words else int(text)
        return cls(**values)  # type: ignore[arg-type]

    def items(self) -> list[str]:
        """The configured ones as `NAME=VALUE` (what `parse` reads)."""
        return [f"{name}={str(value).lower()}" for name in self.__slots__ if (value := getattr(self, name)) is not None]  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Features:
    """What one connection uses, from the configured capabilities and the protocol the
    broker accepted for it."""

    v5: bool
    will_delay: bool
    message_expiry: bool
    retain_handling: bool
    qos1_publishes: bool
    inflight: int

    @classmethod
    def of(cls, capabilities: BrokerCapabilities, *, v5: bool, receive_maximum: int | None = None) -> Features:
        def v5_feature(configured: bool | None) -> bool:
            return v5 and configured is not False

        limits = [DEFAULT_INFLIGHT, *(x for x in (capabilities.receive_maximum, receive_maximum) if x)]
        return cls(
            v5=v5,
            will_delay=v5_feature(capabilities.will_delay),
            message_expiry=v5_feature(capabilities.message_expiry),
            retain_handling=v5_feature(capabilities.retain_handling),
            qos1_publishes=capabilities.qos1_publishes is not False,
            inflight=min(limits),
        )


class ProtocolMemory:
    """Whether the broker refused MQTT 5 (or QoS 1 subscriptions), shared by every
    connection of a session so only the first one finds out. The URLs of a session are the nodes of one broker, so one
    node's refusal holds for all (it saves an MQTT 5 attempt per node on failover).

    A CONNACK that says "unsupported protocol version" settles it. A socket closed before
    any CONNACK (RabbitMQ 3.10's answer to MQTT 5) may also be a node going down, so it
    only makes 3.1.1 a suspicion: the next attempt, at once and to the same node, speaks
    3.1.1; its CONNACK confirms the suspicion, its failure clears it.
    Thread-safe (connectors and the network thread use it)."""

    def __init__(self, *, prefer_v5: bool, qos1_subscriptions: bool = True) -> None:
        self._v5 = prefer_v5
        self._suspect = False
        self.qos1_subscriptions = qos1_subscriptions
        """False once the broker refused a QoS 1 subscription: subscribe at QoS 0."""
        self._lock = threading.Lock()

    def refuse_qos1(self) -> bool:
        """The broker refused a QoS 1 subscription. Returns whether this is news."""
        with self._lock:
            news, self.qos1_subscriptions = self.qos1_subscriptions, False
            return news

    @property
    def v5(self) -> bool:
        """The protocol of the next attempt."""
        return self._v5 and not self._suspect

    def refused(self) -> bool:
        """A CONNACK refused MQTT 5: 3.1.1 from now on. Returns whether this is news."""
        with self._lock:
            news, self._v5, self._suspect = self._v5, False, False
            return news

    def closed_before_connack(self) -> bool:
        """An MQTT 5 attempt closed without CONNACK. Returns whether to try 3.1.1 now."""
        with self._lock:
            if not self._v5 or self._suspect:
                return False
            self._suspect = True
            return True

    def connected(self, *, v5: bool) -> bool:
        """A CONNACK accepted an attempt. Returns whether it confirmed a suspicion (news)."""
        with self._lock:
            confirmed = self._suspect and not v5
            if self._suspect:
                self._v5 = v5
                self._suspect = False
            return confirmed

    def failed(self, *, v5: bool) -> None:
        """An attempt failed without CONNACK: a 3.1.1 attempt on suspicion clears it."""
        with self._lock:
            if self._suspect and not v5:
                self._suspect = False
