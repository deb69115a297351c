"""A subscription the broker refuses is an error, never a silent "synced" (issue 10,
item 10). Mosquitto grants every subscription and filters deliveries by its ACL, so the
refusing broker here is a real nats-server (its MQTT listener answers a SUBACK with a
failure code where the account's permissions deny the subject)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import BrokerSettings, PresenceSession
from components.embedded_broker import free_port, mqtt_ping

from helpers import end_process, python_child, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")]


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A one-node nats-server with JetStream and MQTT whose `watcher` account may not
    subscribe to presence; yields its MQTT port."""
    folder: Path = tmp_path_factory.mktemp("nats")
    port = free_port()
    (folder / "nats.conf").write_text(f"""
server_name: refusing
listen: 127.0.0.1:{free_port()}
jetstream {{ store_dir: "{folder / 'js'}" }}
mqtt {{ listen: 127.0.0.1:{port} }}
authorization {{
  users = [{{user: watcher, password: pw, permissions: {{publish: ">", subscribe: {{allow: ">", deny: ["presence.>"]}}}}}}]
}}
""")
    proc = subprocess.Popen(["nats-server", "-c", str(folder / "nats.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        assert wait_for(lambda: mqtt_ping("127.0.0.1", port, refused_is_up=True), timeout=15), "nats-server did not start"
        yield port
    finally:
        end_process(proc)


def test_a_refused_subscription_is_never_synced_and_says_why(nats: int) -> None:
    settings = BrokerSettings(host="127.0.0.1", port=nats, protocol="3.1.1", username="watcher", password="pw")
    with PresenceSession(settings, org="acme", rooms=["lobby"]) as session:
        assert wait_for(lambda: session.stats().last_error, timeout=10)
        stats = session.stats()
        assert not stats.synced
        assert "refused the subscription to 'presence/acme/+/+'" in stats.last_error, stats.last_error
        assert not session.wait_synced(1.0)


def test_watch_exits_non_zero_with_the_refused_filter(nats: int) -> None:
    proc = python_child("-m", "components", "watch", "--broker", f"mqtt://watcher:pw@127.0.0.1:{nats}", "--org", "acme", "--protocol", "3.1.1")
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        end_process(proc)
    assert proc.returncode == 4, (proc.returncode, out, err)
    assert err.startswith("error: broker refused the subscription to 'presence/acme/+/+'"), err
    assert "Traceback" not in err and "pw" not in err
