"""Brokers beyond one Mosquitto, run as child processes on free loopback ports so tests,
benchmarks (`python -m bench`) and chaos runs (`python -m chaos`) can kill -9 and
restart them: a NATS JetStream cluster speaking MQTT and a private RabbitMQ node with
its MQTT plugin. Readiness is a real MQTT handshake on every node, not a sleep.

Mosquitto itself lives in components/embedded_broker.py (the demo starts it too).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.embedded_broker import free_port, mqtt_ping

NATS = "nats-server"


def nats_binary() -> str | None:
    """nats-server on PATH, or where Debian puts it (/usr/sbin, off a user's PATH)."""
    return shutil.which(NATS) or shutil.which(NATS, path="/usr/sbin:/usr/local/sbin")
HEALTH_WAIT = 20.0
RABBITMQ_WRAPPER = "/usr/sbin/rabbitmq-server"
"""Debian's wrapper: started as root it drops to the `rabbitmq` user."""
RABBITMQ_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
"""The script itself, for a user that is not root."""


def stable_port() -> int:
    """A free loopback port below the kernel's ephemeral range, so that while a node is
    down (killed, restarting) no client socket can be given its number and keep it from
    listening again (free_port's ports come from that range)."""
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _wait_ping(port: int, proc: subprocess.Popen[bytes], *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (log: {log})")
        if mqtt_ping("127.0.0.1", port, timeout=1.0):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not answer CONNECT on port {port} within {timeout:.0f} s (log: {log})")


def _kill(proc: subprocess.Popen[bytes] | None, pid: int | None = None) -> None:
    """SIGKILL the process we started (or `pid`, a process it started), then reap ours."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(pid or proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _terminate(proc: subprocess.Popen[bytes] | None, pid: int | None = None, *, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(pid or proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        _kill(proc, pid)


class NatsCluster:
    """`size` nats-server processes joined by `cluster` routes, each with JetStream and an
    MQTT listener (MQTT 3.1.1 only in NATS 2.9) whose retained messages and sessions live
    in streams replicated `size` times (at most 3). Node i keeps its store across
    restarts, so a restarted node rejoins with its data."""

    def __init__(self, size: int = 3) -> None:
        path = nats_binary()
        if path is None:
            raise FileNotFoundError(f"{NATS} not found (Debian/Ubuntu: apt-get install nats-server)")
        self.binary = path
        self.size = size
        self.dir = Path(tempfile.mkdtemp(prefix="nats-cluster-"))
        ports = set()
        while len(ports) < 4 * size:
            ports.add(stable_port())
        chosen = sorted(ports)
        random.shuffle(chosen)
        self.mqtt_ports, self.route_ports, self.client_ports, self.http_ports = (chosen[k * size:(k + 1) * size] for k in range(4))
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size
        for i in range(size):
            node = self.dir / f"n{i}"
            node.mkdir()
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
            (node / "nats.conf").write_text(
                f"server_name: n{i}\n"
                f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                f"http: 127.0.0.1:{self.http_ports[i]}\n"
                f'jetstream {{ store_dir: "{node / "js"}" }}\n'
                f"cluster {{ name: kit, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}\n"
                f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]}, stream_replicas: {min(size, 3)} }}\n"
            )

    def url(self, i: int) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_ports[i]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.size)]

    @property
    def url_list(self) -> str:
        """Every node, comma-separated: what `MQTT_URL` and `--broker` take."""
        return ",".join(self.urls)

    def log_path(self, i: int) -> Path:
        return self.dir / f"n{i}" / "nats.log"

    def pid(self, i: int) -> int | None:
        proc = self.processes[i]
        return proc.pid if proc is not None and proc.poll() is None else None

    def alive(self, i: int) -> bool:
        return self.pid(i) is not None

    def _spawn(self, i: int) -> None:
        node = self.dir / f"n{i}"
        self.processes[i] = subprocess.Popen(
            [self.binary, "-c", str(node / "nats.conf"), "-l", str(self.log_path(i))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def healthy(self, i: int) -> bool:
        """Node i's monitoring says it is ready, JetStream streams and consumers current
        (`/healthz`): a node that answers MQTT may still be catching up, and killing
        another node then would leave the streams without a quorum."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/healthz", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stream_leader(self, stream: str) -> int | None:
        """The node leading JetStream stream `stream` (e.g. `$MQTT_msgs`, where NATS stores
        every QoS 1 publish), as the first live node's monitoring (`/jsz`) says."""
        for i in range(self.size):
            if not self.alive(i):
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/jsz?accounts=true&streams=true", timeout=5) as response:
                    found = json.loads(response.read())
            except (OSError, urllib.error.URLError, ValueError):
                continue
            for account in found.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    leader = (detail.get("cluster") or {}).get("leader", "")
                    if detail.get("name") == stream and leader.startswith("n") and leader[1:].isdigit():
                        return int(leader[1:])
            return None
        return None

    def mqtt_clients(self, i: int) -> list[str]:
        """Client ids of the MQTT connections node i holds now (`/connz`)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/connz?limit=100000", timeout=5) as response:
                found = json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return []
        return [c["mqtt_client"] for c in found.get("connections") or [] if c.get("mqtt_client")]

    def _wait_ready(self, i: int, timeout: float) -> None:
        """MQTT answers, then up to HEALTH_WAIT for `/healthz` (a consumer of a client
        that died with a node can stay "not current" for long; MQTT works meanwhile)."""
        _wait_ping(self.mqtt_ports[i], self.processes[i], timeout=timeout, what=f"nats node {i}", log=self.log_path(i))  # type: ignore[arg-type]
        deadline = time.monotonic() + HEALTH_WAIT
        while not self.healthy(i) and time.monotonic() < deadline:
            time.sleep(0.2)

    def start(self, *, timeout: float = 30.0) -> NatsCluster:
        for i in range(self.size):
            self._spawn(i)
        try:
            for i in range(self.size):
                self._wait_ready(i, timeout)
        except Exception:
            self.stop()
            raise
        return self

    def kill(self, i: int) -> None:
        """SIGKILL node i: its clients' sockets close and it fires none of their wills."""
        _kill(self.processes[i])

    def restart(self, i: int, *, timeout: float = 30.0) -> None:
        """Start node i again (after kill); wait until it answers MQTT and every node
        reports itself healthy (caught up)."""
        _terminate(self.processes[i])
        self._spawn(i)
        self._wait_ready(i, timeout)
        for j in range(self.size):
            if j != i and self.alive(j):
                self._wait_ready(j, timeout)

    def stop(self) -> None:
        for proc in self.processes:
            _terminate(proc)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def rabbitmq_available() -> bool:
    return os.path.exists(RABBITMQ_SCRIPT) and (os.geteuid() != 0 or os.path.exists(RABBITMQ_WRAPPER))


class RabbitMQNode:
    """A private RabbitMQ node (its own name, ports and folders) with the MQTT plugin
    enabled through its own enabled-plugins file; nothing system-wide is touched. Started
    as root, Debian's wrapper drops to the `rabbitmq` user, so the folder is theirs.
    Takes about 10 s to start."""

    def __init__(self) -> None:
        if not rabbitmq_available():
            raise FileNotFoundError(f"{RABBITMQ_SCRIPT} not found (Debian/Ubuntu: apt-get install rabbitmq-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
        self.port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.log_path = self.dir / "console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            "RABBITMQ_NODENAME": f"kit{self.port}@localhost",
            "RABBITMQ_BASE": str(self.dir),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.dir / "feature_flags"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
        }

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _beam_pid(self) -> int | None:
        """The Erlang VM's pid (the node itself), from the pid file it writes."""
        try:
            return int((self.dir / "rabbitmq.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, *, timeout: float = 60.0) -> RabbitMQNode:
        if os.geteuid() == 0:
            account = pwd.getpwnam("rabbitmq")
            for root, dirs, files in os.walk(self.dir):
                for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                    os.chown(name, account.pw_uid, account.pw_gid)
            command, env = [RABBITMQ_WRAPPER], dict(os.environ, **self.env)
        else:
            command, env = [RABBITMQ_SCRIPT], dict(os.environ, HOME=str(self.dir), **self.env)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            _wait_ping(self.port, self.process, timeout=timeout, what="rabbitmq", log=self.log_path)
        except Exception:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        _kill(self.process, self._beam_pid())

    def stop(self) -> None:
        _terminate(self.process, self._beam_pid(), grace=30.0)
        if self.process is not None and hasattr(self, "_log"):
            self._log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RabbitMQNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
