"""A real `streamlit run demo_app.py` child process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.embedded_broker import free_port

from helpers import REPO, kit_env

TOKEN_KEY = "e2e-test-token-key-0123456789abcdef"


class StreamlitServer:
    def __init__(
        self, *, app_file: Path, broker_url: str, log_dir: Path, extra_env: dict[str, str] | None = None, wait_for_broker: bool = True
    ) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"streamlit-{self.port}.log"
        env = kit_env()
        env.update({"PRESENCE_APP_FILE": str(app_file), "MQTT_URL": broker_url, "PRESENCE_TOKEN_KEY": TOKEN_KEY, **(extra_env or {})})
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "demo_app.py"),
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy(broker=wait_for_broker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict | None:
        """The health route's JSON (also when it answers 503: broker unreachable)."""
        try:
            with urllib.request.urlopen(f"{self.url}/presence-kit/health", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 60.0, *, broker: bool = True) -> None:
        """Until the server answers (and, with `broker`, has its snapshot from the broker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            health = self.health()
            if health and (health["broker"]["synced"] or not broker):
                return
            time.sleep(0.2)
        raise TimeoutError(f"streamlit not healthy within {timeout} s: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
