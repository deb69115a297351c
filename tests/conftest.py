"""Fixtures: real Mosquitto brokers spawned on free loopback ports, spoken to over
MQTT 5 and 3.1.1, a 3-node NATS JetStream cluster and a private RabbitMQ node
(bench/brokers.py), per-test topic prefixes so retained state never leaks between
tests, and chat history in real SQLite files and in a schema of the test's own on the
PostgreSQL at 127.0.0.1:5432."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from components import BrokerSettings, PresenceSession
from bench.brokers import NatsCluster, RabbitMQNode, nats_binary, rabbitmq_available
from components.embedded_broker import MosquittoBroker

from helpers import HistoryPlace, Watcher, postgres_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("mosquitto") is None:
        skip = pytest.mark.skip(reason="mosquitto is not installed (apt-get install mosquitto)")
        for item in items:
            if "integration" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_broker() -> Iterator[MosquittoBroker]:
    """One broker for the tests that do not kill it (each test has its own prefix)."""
    broker = MosquittoBroker().start()
    yield broker
    broker.cleanup()


@pytest.fixture
def own_broker() -> Iterator[MosquittoBroker]:
    """A broker this test may kill and restart."""
    broker = MosquittoBroker().start()
    yield broker
    broker.cleanup()


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-server nodes (JetStream, MQTT) for one test module; a test may kill
    nodes (`restart` brings one back)."""
    if nats_binary() is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    cluster = NatsCluster(3).start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQNode]:
    """A private RabbitMQ node with its MQTT plugin (about 10 s to start)."""
    if not rabbitmq_available():
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    node = RabbitMQNode().start()
    yield node
    node.cleanup()


@pytest.fixture(params=["5", "3.1.1"], ids=["mqtt5", "mqtt311"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(shared_broker: MosquittoBroker, protocol: str, prefix: str) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=shared_broker.port, protocol=protocol, keepalive=5, topic_prefix=prefix)  # type: ignore[arg-type]


@pytest.fixture
def make_session(settings: BrokerSettings) -> Iterator:
    """Build started sessions on the test's broker settings; all closed at the end."""
    sessions: list[PresenceSession] = []

    def make(*, settings_override: BrokerSettings | None = None, org: str = "acme", rooms: tuple[str, ...] = ("lobby",), **options) -> PresenceSession:
        session = PresenceSession(settings_override or settings, org=org, rooms=rooms, **options).start()
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close(timeout=1.0)


@pytest.fixture
def watcher(make_session) -> Watcher:
    session = make_session()
    assert session.wait_synced(5), "watcher did not get its snapshot"
    return Watcher(session)


# -- chat history --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> str:
    """The URL of the PostgreSQL on 127.0.0.1:5432 (skips the test when there is none)."""
    url, why = postgres_url()
    if url is None:
        pytest.skip(why)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def history_place(request: pytest.FixtureRequest, tmp_path) -> Iterator[HistoryPlace]:
    """A SQLite file in tmp_path, or a schema of this test's own in PostgreSQL
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield HistoryPlace.sqlite(tmp_path)
        return
    place = HistoryPlace.postgres(request.getfixturevalue("postgres"), name=f"t{uuid.uuid4().hex[:12]}")
    yield place
    place.drop()


# -- end-to-end: real Streamlit servers and headless Chromium ----------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium):
    """New isolated browser contexts (one per simulated person); closed at the end."""
    contexts = []

    def make():
        context = chromium.new_context(viewport={"width": 1100, "height": 800})
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - the context may already be gone
            pass


@pytest.fixture(scope="module")
def e2e_broker() -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker().start()
    yield broker
    broker.cleanup()


@pytest.fixture(scope="module")
def start_server(e2e_broker, tmp_path_factory):
    """Start `streamlit run demo_app.py` servers on the module's broker with a given
    app file text; all stopped at the end of the module."""
    from streamlit_server import StreamlitServers

    servers = StreamlitServers(broker_url=e2e_broker.url, directory=tmp_path_factory.mktemp("e2e"))
    yield lambda app_text, *, bot=False: servers.start(app_text, env={"PRESENCE_DEMO_BOT": "1" if bot else "0"})
    servers.stop()


@pytest.fixture
def e2e_watcher(e2e_broker) -> Iterator[Watcher]:
    """A plain session on the e2e broker: what any other subscriber sees."""
    session = PresenceSession(BrokerSettings(host="127.0.0.1", port=e2e_broker.port), org="e2e", rooms=["lobby"]).start()
    assert session.wait_synced(5)
    yield Watcher(session)
    session.close(timeout=1)


@pytest.fixture
def people():
    """Unique user names per test: a module's servers are shared."""
    suffix = uuid.uuid4().hex[:5]
    return lambda name: f"{name}-{suffix}"
