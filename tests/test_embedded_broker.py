"""The demo's embedded broker: Mosquitto where the binary exists, else iotcore (pip)."""

from __future__ import annotations

import pytest

from components import BrokerSettings, PresenceSession
from components import embedded_broker
from components.embedded_broker import EmbeddedBroker

from helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mosquitto_installed", [True, False], ids=["mosquitto", "iotcore-fallback"])
def test_embedded_broker_carries_presence(monkeypatch, mosquitto_installed: bool) -> None:
    if not mosquitto_installed:
        pytest.importorskip("iotcore")
        real_which = embedded_broker.shutil.which
        monkeypatch.setattr(embedded_broker.shutil, "which", lambda name: None if name == "mosquitto" else real_which(name))
    broker = EmbeddedBroker()
    try:
        assert broker.kind.startswith("Mosquitto" if mosquitto_installed else "iotcore")
        settings = BrokerSettings.from_url(broker.url, protocol=broker.protocol)
        with PresenceSession(settings, org="demo", rooms=["lobby"]) as session:
            assert session.wait_synced(5)
            device = session.open_device(user="ana", device="tab-1")
            assert wait_for(lambda: (p := session.snapshot().users.get("ana")) is not None and p.status == "online", timeout=5)
            device.close()
            assert wait_for(lambda: session.snapshot().users["ana"].status == "offline", timeout=5)
    finally:
        broker.stop()
