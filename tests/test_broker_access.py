"""Broker access control against a real Mosquitto started with deploy/mosquitto.conf and
the files `python -m components acl` generates: a user account cannot speak for
another user on any topic the kit reads, the server account can speak for all, and
TLS works with a CA made here (and fails without it)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from components import BrokerSettings, ChatReceived, CursorMoved, PresenceSession, ReactionReceived, ReceiptMoved, TypingChanged
from components.broker_acl import read_credentials
from components.embedded_broker import MosquittoBroker, free_port
from components.topics import Topic, TopicScheme

from helpers import REPO, Watcher, python_child, wait_for

pytestmark = pytest.mark.integration

ORG = "acme"
SERVER = "streamlit"


def make_tls_files(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def build(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:  # noqa: ANN001
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("presence-kit test CA", ca_key, "presence-kit test CA", ca_key, ca=True)
    server = build("127.0.0.1", server_key, "presence-kit test CA", ca_key, ca=False)
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class SecuredBroker:
    def __init__(self, broker: MosquittoBroker, folder: Path, tls_port: int) -> None:
        self.broker = broker
        self.folder = folder
        self.tls_port = tls_port
        self.passwords = read_credentials((folder / "credentials").read_text())

    def settings(self, username: str | None, *, protocol: str = "5", tls: bool = False, ca: bool = True) -> BrokerSettings:
        return BrokerSettings(
            host="127.0.0.1",
            port=self.tls_port if tls else self.broker.port,
            tls=tls,
            ca_file=str(self.folder / "tls" / "ca.crt") if tls and ca else None,
            username=username,
            password=self.passwords.get(username or "", None),
            protocol=protocol,  # type: ignore[arg-type]
            keepalive=5,
        )


def localize(config: str, folder: Path, ports: dict[str, int]) -> str:
    """deploy/mosquitto.conf with its paths and listeners moved into this test."""
    config = config.replace("/etc/mosquitto/presence-kit/", f"{folder}/").replace("/var/lib/mosquitto/", f"{folder}/")
    config = config.replace("persistence true", "persistence false")
    lines = []
    for line in config.splitlines():
        if line.startswith("listener "):
            line = f"listener {ports[line.split()[1]]} 127.0.0.1"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    folder = tmp_path_factory.mktemp("secured")
    make_tls_files(folder / "tls")
    proc = python_child("-m", "components", "acl", "--org", ORG, "--server-account", SERVER, "--user", "ana", "--user", "ben", "--out", str(folder))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "3 accounts" in out and (folder / "credentials").stat().st_mode & 0o077 == 0
    ports = {"1883": free_port(), "8883": free_port(), "8884": free_port()}
    config = localize((REPO / "deploy" / "mosquitto.conf").read_text(), folder, ports)
    broker = MosquittoBroker(port=ports["1883"], config=config).start()
    yield SecuredBroker(broker, folder, ports["8883"])
    broker.cleanup()


def connack(secured: SecuredBroker, username: str | None, password: str | None) -> str:
    """The reason the broker gives a plain client that logs in this way."""
    result: list[str] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: (result.append(str(rc)), done.set())
    client.connect("127.0.0.1", secured.broker.port)
    client.loop_start()
    done.wait(5)
    client.loop_stop()
    client.disconnect()
    return result[0] if result else "no answer"


def test_anonymous_and_wrong_passwords_are_refused(secured: SecuredBroker) -> None:
    assert connack(secured, None, None) == "Not authorized"
    assert connack(secured, "ana@acme", "wrong") == "Not authorized"
    assert connack(secured, "ana", secured.passwords["ana@acme"]) == "Not authorized"
    assert connack(secured, "ana@acme", secured.passwords["ana@acme"]) == "Success"


class Recorder(Watcher):
    """A watcher that also keeps every room event."""

    def __init__(self, session: PresenceSession) -> None:
        self.events: list[object] = []
        super().__init__(session)

    def _on_event(self, event: object) -> None:
        super()._on_event(event)
        self.events.append(event)

    def by(self, user: str) -> list[object]:
        found = []
        for event in self.events:
            if isinstance(event, (ChatReceived,)) and event.message.user == user:
                found.append(event)
            elif isinstance(event, (ReactionReceived, ReceiptMoved)) and event.user == user:
                found.append(event)
            elif isinstance(event, CursorMoved) and event.user == user and event.cursor is not None:
                found.append(event)
            elif isinstance(event, TypingChanged) and user in event.typists:
                found.append(event)
        return found


def forged(scheme: TopicScheme, user: str, room: str) -> list[tuple[str, bytes, bool]]:
    """A valid message of `user` on every topic the kit reads: (topic, payload, retain)."""
    now = round(time.time(), 3)
    presence = json.dumps({"status": "online", "epoch": int(now * 1000) + 10**6, "since": now}).encode()
    return [
        (scheme.render(Topic("presence", ORG, user, device="d9")), presence, True),
        (scheme.render(Topic("presence", ORG, user)), presence, True),
        (scheme.render(Topic("typing", ORG, user, room=room, device="d9")), json.dumps({"typing": True, "ttl": 30000}).encode(), False),
        (scheme.render(Topic("cursor", ORG, user, room=room, device="d9")), json.dumps({"x": 0.5, "y": 0.5}).encode(), False),
        (scheme.render(Topic("receipts", ORG, user, room=room)), json.dumps({"up_to": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "at": now}).encode(), True),
        (scheme.render(Topic("chat", ORG, user, room=room)), json.dumps({"id": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "text": "I am ben", "at": now}).encode(), False),
        (scheme.render(Topic("reactions", ORG, user, room=room)), json.dumps({"emoji": "+1", "count": 3}).encode(), False),
        (scheme.render(Topic("lease", ORG, user, device="p9")), json.dumps({"until": now + 3600}).encode(), True),
    ]


def plain_client(secured: SecuredBroker, username: str, *, protocol: str, will: tuple[str, bytes] | None = None) -> paho.Client:
    v5 = protocol == "5"
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
    client.username_pw_set(username, secured.passwords[username])
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", secured.broker.port, keepalive=5)
    client.loop_start()
    assert connected.wait(5), f"{username} could not connect"
    return client


def test_a_user_account_cannot_speak_for_another_user(secured: SecuredBroker, protocol: str) -> None:
    scheme = TopicScheme()
    room = f"room-{protocol}"  # one module broker for both protocols: keep their retained state apart
    with PresenceSession(secured.settings(SERVER, protocol=protocol), org=ORG, rooms=[room]) as server:
        assert server.wait_synced(5), server.stats()
        watcher = Recorder(server)
        # ana forges ben on every topic, and leaves a will in ben's name
        will_topic = scheme.render(Topic("presence", ORG, "ben", device="will"))
        ana = plain_client(secured, "ana@acme", protocol=protocol, will=(will_topic, forged(scheme, "ben", room)[0][1]))
        for topic, payload, retain in forged(scheme, "ben", room):
            ana.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        # ...and the same messages in her own name, which must arrive (so the test sees)
        for topic, payload, retain in forged(scheme, "ana", room):
            ana.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        ana._sock.close()  # a death without DISCONNECT: the broker fires the will
        assert wait_for(lambda: len(watcher.by("ana")) >= 5, timeout=5), "\n".join(map(repr, watcher.events))
        assert watcher.current("ana") is not None and watcher.current("ana").status == "online"
        time.sleep(0.5)  # anything forged would have come with or before ana's own
        assert watcher.current("ben") is None
        assert watcher.by("ben") == []
        ana.loop_stop()
        # a late joiner finds nothing retained in ben's name either
        with PresenceSession(secured.settings("ben@acme", protocol=protocol), org=ORG, rooms=[room]) as late:
            assert late.wait_synced(5)
            assert "ben" not in late.snapshot().users
            assert "ben" not in late.snapshot().rooms[room].receipts
            leases = late.state.leases.leases()
            assert "ana/p9" in leases and "ben/p9" not in leases  # a lease is its owner's alone


def test_the_kit_as_a_user_account_watches_the_org_and_is_held_to_its_own_user(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER), org=ORG, rooms=["lobby"]) as server:
        assert server.wait_synced(5)
        watcher = Watcher(server)
        with PresenceSession(secured.settings("ana@acme"), org=ORG, rooms=["lobby"]) as bot:
            assert bot.wait_synced(5), bot.stats()  # read + the sync echo are allowed
            own = bot.open_device(user="ana", device="bot")
            other = bot.open_device(user="ben", device="bot")
            assert watcher.wait_status("ana", "online", timeout=5) is not None
            assert other.wait_connected(5)
            time.sleep(0.5)
            assert watcher.current("ben") is None, "ana's account published ben's presence"
            assert wait_for(lambda: "ana" in bot.snapshot().users, timeout=3)
            assert own.connected
            # the bot's lease is ana's (lease/acme/ana/...), which her account may renew
            assert bot.lease.name.startswith("ana/")
            assert wait_for(lambda: bot.lease.name in server.state.leases.leases(), timeout=3)


def test_the_server_account_speaks_for_every_user_over_tls(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER, tls=True), org=ORG, rooms=["lobby"]) as server:
        assert server.wait_synced(5), server.stats()
        watcher = Watcher(server)
        for user in ("ana", "ben"):
            server.open_device(user=user, device="tab")
        assert watcher.wait_status("ana", "online", timeout=5) is not None
        assert watcher.wait_status("ben", "online", timeout=5) is not None


def test_tls_without_the_ca_is_refused(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER, tls=True, ca=False), org=ORG) as session:
        assert wait_for(lambda: session.observer.last_error, timeout=5)
        assert "CERTIFICATE_VERIFY_FAILED" in session.observer.last_error or "certificate verify failed" in session.observer.last_error
        assert not session.synced and session.observer.connects == 0
