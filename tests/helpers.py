"""Shared test helpers. They live in bench/harness.py, shared with the benchmarks
(`python -m bench`), and are re-exported here for the tests."""

from bench.harness import REPO, Seen, Watcher, end_process, join_process, kit_env, python_child, wait_for

__all__ = ["REPO", "Seen", "Watcher", "end_process", "join_process", "kit_env", "python_child", "wait_for"]
