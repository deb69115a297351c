"""A real `streamlit run demo_app.py` child process on a free loopback port; it lives
in bench/harness.py, shared with the benchmarks, and is re-exported here with a small
group of them for a test or a module."""

from pathlib import Path

from bench.harness import TOKEN_KEY, StreamlitServer, tab_hello, tab_token

__all__ = ["TOKEN_KEY", "StreamlitServer", "StreamlitServers", "tab_hello", "tab_token"]


class StreamlitServers:
    """Servers on one broker, their app files and logs in one folder; `stop()` ends them all."""

    def __init__(self, *, broker_url: str, directory: Path) -> None:
        self.broker_url = broker_url
        self.directory = directory
        self.started: list[StreamlitServer] = []

    def start(self, app_text: str, *, env: dict[str, str]) -> StreamlitServer:
        app_file = self.directory / f"app-{len(self.started)}.yaml"
        app_file.write_text(app_text)
        server = StreamlitServer(app_file=app_file, broker_url=self.broker_url, log_dir=self.directory, extra_env=env)
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()
