"""What every row of the benchmark shares: the bench's own Mosquitto (free loopback
port, `sys_interval 1` so `$SYS` counters are fresh every second, otherwise a default
config, as real users run it), the mode, and a scratch directory."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from components import BrokerSettings
from components.embedded_broker import MosquittoBroker

BROKER_CONFIG = "sys_interval 1\n"


@dataclass
class Bench:
    quick: bool
    broker: MosquittoBroker = field(default_factory=lambda: MosquittoBroker(extra_config=BROKER_CONFIG))
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))

    def start(self) -> Bench:
        self.broker.start()
        return self

    def close(self) -> None:
        self.broker.cleanup()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def settings(self, *, prefix: str, protocol: str = "5", keepalive: int = 30) -> BrokerSettings:
        """Broker settings under a topic prefix of the row's own, so rows never see
        each other's retained messages."""
        return BrokerSettings(host="127.0.0.1", port=self.broker.port, protocol=protocol, keepalive=keepalive, topic_prefix=prefix)  # type: ignore[arg-type]
