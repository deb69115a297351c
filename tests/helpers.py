"""Shared test helpers. They live in bench/harness.py, shared with the benchmarks
(`python -m bench`), and are re-exported here for the tests."""

import threading

from bench.harness import REPO, Seen, Watcher, end_process, join_process, kit_env, python_child, wait_for

__all__ = ["REPO", "RawSubscriber", "Seen", "Watcher", "end_process", "join_process", "kit_env", "python_child", "wait_for"]


class RawSubscriber:
    """A plain paho client subscribed to `topic_filter`, recording (topic, payload):
    what any other MQTT client on the broker would receive."""

    def __init__(self, port: int, topic_filter: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(topic_filter, qos=1)
        self._client.loop_start()
        if not subscribed.wait(5):
            raise TimeoutError("no SUBACK")

    def topics(self, prefix: str) -> list[str]:
        return [topic for topic, _ in self.messages if topic.startswith(prefix)]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

