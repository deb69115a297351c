"""A Mosquitto broker run as a child process on a free loopback port.

Used by the demo when no broker is configured, and by the tests and benchmarks, which
need brokers they can kill and restart. Readiness is a real MQTT handshake (CONNECT,
then CONNACK), not a sleep.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mqtt_ping(host: str, port: int, *, timeout: float = 1.0, refused_is_up: bool = False) -> bool:
    """True when an MQTT 3.1.1 CONNECT at host:port is answered with an accepting
    CONNACK (with `refused_is_up`, any CONNACK: a broker that refuses anonymous
    clients is up all the same)."""
    client_id = f"ping-{os.getpid()}-{time.monotonic_ns()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
            return reply[:2] == b"\x20\x02" and (refused_is_up or reply[3:4] == b"\x00")
    except OSError:
        return False


class MosquittoBroker:
    """`mosquitto` on 127.0.0.1:PORT with a generated config; log in a temp dir."""

    def __init__(
        self,
        *,
        port: int | None = None,
        persistence: bool = False,
        websockets_port: int | None = None,
        extra_config: str = "",
        config: str | None = None,
        binary: str = "mosquitto",
    ) -> None:
        """`config`, when given, is a complete configuration used instead of the
        generated one (logging is still added); its plain MQTT listener must be
        127.0.0.1:`port`. Readiness then accepts a refusing CONNACK, since such a
        configuration usually refuses anonymous clients."""
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(f"{binary} not found (Debian/Ubuntu: apt-get install mosquitto)")
        self.binary = path
        self.port = port or free_port()
        self.websockets_port = websockets_port
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.log_path = self.dir / "mosquitto.log"
        self._custom = config is not None
        lines = [config] if config is not None else [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
        ]
        if os.geteuid() == 0:
            # Mosquitto started as root switches to the `mosquitto` user, which cannot
            # open the log, password or ACL files in our private temp dir: stay root.
            lines.append("user root")
        lines += [
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if persistence:
            lines.append("autosave_interval 1")
        if websockets_port:
            lines += [f"listener {websockets_port} 127.0.0.1", "protocol websockets"]
        self.config_path = self.dir / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, *, timeout: float = 10.0) -> MosquittoBroker:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {err.strip()} (log: {self.log_path})")
            if mqtt_ping("127.0.0.1", self.port, timeout=0.5, refused_is_up=self._custom):
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"mosquitto did not answer CONNECT on port {self.port} within {timeout} s")

    def save(self, *, timeout: float = 5.0) -> None:
        """Have a persistent broker write its state to disk now (SIGUSR1) and wait until
        the file changed, so a kill right after loses nothing (autosave is only every second)."""
        db = self.dir / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else None
        assert self.process is not None and self.process.poll() is None, "the broker is not running"
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while (db.stat().st_mtime_ns if db.exists() else None) == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {db} within {timeout} s (persistence off?)")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing anything cleanly."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def restart(self, *, timeout: float = 10.0) -> MosquittoBroker:
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class EmbeddedBroker:
    """The broker the demo starts when none is configured: Mosquitto where the binary
    exists (MQTT 5), else iotcore (rumqttd, installed with pip; MQTT 3.1.1 on its
    default listener), both as child processes on a free loopback port."""

    def __init__(self) -> None:
        if shutil.which("mosquitto"):
            self._mosquitto: MosquittoBroker | None = MosquittoBroker().start()
            self._iotcore = None
            self.kind, self.protocol, self.port = "Mosquitto", "5", self._mosquitto.port
        else:
            from iotcore.broker import Broker  # optional: only where mosquitto is missing

            self._mosquitto = None
            self._iotcore = Broker(port=free_port(), listen="127.0.0.1").start()
            self.kind, self.protocol, self.port = "iotcore (rumqttd)", "3.1.1", self._iotcore.port

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._mosquitto is not None:
            self._mosquitto.cleanup()
        if self._iotcore is not None:
            self._iotcore.stop()
