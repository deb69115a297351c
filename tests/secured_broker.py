"""A real Mosquitto with deploy/mosquitto.conf and the accounts `python -m components acl`
generates (a server account and USER@ORG accounts held to their own user), plus TLS
files made here: what the access and hostile-peer tests run against."""

from __future__ import annotations

import datetime
import ipaddress
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from components import BrokerSettings
from components.broker_acl import read_credentials
from components.embedded_broker import MosquittoBroker, free_port

from helpers import REPO, python_child

SERVER = "streamlit"
"""The server account's name."""


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


def start_secured(folder: Path, *, org: str, users: list[str]) -> SecuredBroker:
    """Mosquitto with the generated ACL for `org`: the server account and one account
    per user (`USER@ORG`). Stop it with `.broker.cleanup()`."""
    make_tls_files(folder / "tls")
    args = ["-m", "components", "acl", "--org", org, "--server-account", SERVER, "--out", str(folder)]
    for user in users:
        args += ["--user", user]
    proc = python_child(*args)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"{len(users) + 1} accounts" in out and (folder / "credentials").stat().st_mode & 0o077 == 0
    ports = {"1883": free_port(), "8883": free_port(), "8884": free_port()}
    config = localize((REPO / "deploy" / "mosquitto.conf").read_text(), folder, ports)
    broker = MosquittoBroker(port=ports["1883"], config=config).start()
    return SecuredBroker(broker, folder, ports["8883"])


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
