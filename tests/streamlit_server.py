"""A real `streamlit run demo_app.py` child process on a free loopback port; it lives
in bench/harness.py, shared with the benchmarks, and is re-exported here."""

from bench.harness import TOKEN_KEY, StreamlitServer, tab_hello, tab_token

__all__ = ["TOKEN_KEY", "StreamlitServer", "tab_hello", "tab_token"]
