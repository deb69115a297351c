"""The command line: `python -m components {watch,join,acl,validate,schema,run,edit} ...`.

    watch --broker mqtt://HOST:PORT --org ORG [--room ROOM]
        one JSON object per line, flushed at once: first a line per user of the current
        snapshot, then a line whenever a user's status or device count changes
        (keys: user, status, devices, since, plus name, avatar, rooms).
    join --broker mqtt://HOST:PORT --org ORG --user USER [--device DEV] [--keepalive S]
        stay online as that device until SIGTERM/SIGINT (then leave cleanly) or a kill
        (then the broker fires the will).
    acl --org ORG --server-account NAME [--user USER ...] --out DIR
        write Mosquitto's `acl` and `passwd` files and a 0600 `credentials` file with the
        plain passwords (see components.broker_acl and deploy/README.md).
    validate [--require-env] FILE...
        check app files; an unset ${NAME} is a warning unless --require-env.
    run APP.yaml [STREAMLIT OPTIONS]
        serve the app the file describes, with no Python file (components/apps/run_app.py).
    edit APP.yaml [STREAMLIT OPTIONS]
        the visual editor of an app file, on a free loopback port (components/apps/editor_app.py).

`run` and `edit` check what they are given, then become `streamlit run` (exec), so
Streamlit's options (--server.port 8600, --theme.base dark, ...) pass through and a
signal to this process reaches Streamlit itself.

Every failure the user can cause (bad id, bad URL, unreachable broker, invalid app
file) prints one clear line per problem on stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from .broker import BrokerSettings
from .capabilities import BrokerCapabilities
from .errors import ConfigError, PresenceKitError
from .events import Event, PresenceChanged, Snapshot
from .ids import check_id
from .lease_keeper import DEFAULT_LEASE
from .presence import UserPresence
from .reconnecting import ReconnectingClient
from .session import PresenceSession

CONNECT_TIMEOUT = 10.0
EXIT_BROKER_UNREACHABLE = 3
EXIT_BROKER_REFUSED = 4
"""The broker cannot give a correct snapshot (capabilities.py), said in one line."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m components", description="MQTT presence kit")
    commands = parser.add_subparsers(dest="command", required=True)

    def broker_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--broker", required=True, metavar="URL[,URL...]", help="mqtt://HOST:PORT or mqtts://HOST:PORT; several, comma-separated: the nodes of a cluster, tried in order")
        sub.add_argument("--org", required=True)
        sub.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version (default 5)")
        sub.add_argument("--keepalive", type=int, default=30, metavar="SECONDS")
        sub.add_argument("--leave-grace", type=float, default=2.0, metavar="SECONDS")
        sub.add_argument("--lease", type=float, default=DEFAULT_LEASE, metavar="SECONDS", help=f"how long a device's presence holds without renewal (default {DEFAULT_LEASE:.0f})")
        sub.add_argument("--topic-prefix", default="", metavar="PREFIX")
        sub.add_argument("--capability", action="append", default=[], metavar="NAME=VALUE",
                         help="what the broker can do, as the app file's broker.capabilities (repeatable), e.g. qos1_subscriptions=false and qos1_publishes=false for NATS")
        sub.add_argument("--verbose", action="store_true", help="log reconnects, failovers and broker capabilities to stderr")

    watch = commands.add_parser("watch", help="print presence changes as JSON lines")
    broker_options(watch)
    watch.add_argument("--room", help="only users in this room")

    join = commands.add_parser("join", help="stay online as a device until stopped")
    broker_options(join)
    join.add_argument("--user", required=True)
    join.add_argument("--device", help="device id (default: a random one)")
    join.add_argument("--name", help="display name")
    join.add_argument("--room", action="append", default=[], help="room this device is in (repeatable)")

    acl = commands.add_parser("acl", help="write Mosquitto password and ACL files for an org's accounts")
    acl.add_argument("--org", required=True)
    acl.add_argument("--server-account", action="append", required=True, metavar="NAME", help="account of a Streamlit server (repeatable)")
    acl.add_argument("--user", action="append", default=[], metavar="USER", help="user id that gets its own account USER@ORG (repeatable)")
    acl.add_argument("--topic-prefix", default="", metavar="PREFIX")
    acl.add_argument("--out", required=True, metavar="DIR", help="folder for acl, passwd and credentials (0600)")

    validate = commands.add_parser("validate", help="check app files against the schema")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--require-env", action="store_true", help="an unset ${NAME} is an error, not a warning")

    commands.add_parser("schema", help="print the app-file JSON Schema")

    for name, text in (("run", "serve the app an app file describes"), ("edit", "edit an app file visually, with a live preview")):
        sub = commands.add_parser(name, help=f"{text} (Streamlit's options pass through)")
        sub.add_argument("file", metavar="APP.yaml")
        sub.add_argument("streamlit_options", nargs=argparse.REMAINDER, metavar="STREAMLIT OPTIONS", help="e.g. --server.port 8600")
    return parser


def _settings(args: argparse.Namespace) -> BrokerSettings:
    return BrokerSettings.from_url(
        args.broker, protocol=args.protocol, keepalive=args.keepalive, topic_prefix=args.topic_prefix,
        capabilities=BrokerCapabilities.parse(args.capability),
    )  # fmt: skip


def _await_first_connect(client: ReconnectingClient, ready: Callable[[], bool]) -> str | None:
    """Wait until `ready()`; give the reason when an attempt on every broker URL has
    failed, or time runs out."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    nodes = len(client.wiring.settings.endpoints)
    while time.monotonic() < deadline:
        if ready():
            return None
        if client.failures >= nodes and client.connects == 0:
            return client.last_error
        time.sleep(0.05)
    return client.last_error or "timed out"


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT; installed first so an early signal still
    leads to a clean leave."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _wait(stop: threading.Event) -> None:
    while not stop.wait(3600):
        pass


class _WatchPrinter:
    """Prints the snapshot once complete, then each change of status or device count."""

    def __init__(self, out: TextIO, *, room: str | None) -> None:
        self._out = out
        self._room = room
        self._shown: dict[str, tuple[str, int]] = {}
        self._pending: dict[str, UserPresence] = {}
        self._live = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            self._pending = dict(event.users)
            if event.complete:
                self._go_live()
        elif isinstance(event, PresenceChanged):
            if not self._live:
                if event.presence is None:
                    self._pending.pop(event.user, None)
                else:
                    self._pending[event.user] = event.presence
            elif event.presence is not None:
                self._show(event.presence)

    def _go_live(self) -> None:
        self._live = True
        for presence in sorted(self._pending.values(), key=lambda p: p.user):
            self._show(presence)
        self._pending = {}

    def _show(self, presence: UserPresence) -> None:
        if self._room is not None and presence.rooms and self._room not in presence.rooms:
            return
        key = (presence.status, presence.devices)
        if self._shown.get(presence.user) == key:
            return
        self._shown[presence.user] = key
        self._out.write(json.dumps(presence.to_json()) + "\n")
        self._out.flush()


def _watch(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    rooms = [check_id(args.room, kind="room")] if args.room else []
    session = PresenceSession(_settings(args), org=args.org, rooms=rooms, leave_grace=args.leave_grace, lease=args.lease).start()
    try:
        assert session.observer is not None
        if (error := _await_first_connect(session.observer, lambda: session.synced or session.refusal is not None)) is not None:
            return _unreachable(error)
        if session.refusal is not None:
            print(f"error: {session.refusal}", file=sys.stderr)
            return EXIT_BROKER_REFUSED
        session.subscribe(_WatchPrinter(sys.stdout, room=args.room))
        _wait(stop)
    finally:
        session.close(timeout=1.0)
    return 0


def _join(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    device_id = args.device or f"cli-{secrets.token_hex(4)}"
    check_id(args.user, kind="user")
    check_id(device_id, kind="device")
    session = PresenceSession(_settings(args), org=args.org, rooms=args.room, leave_grace=args.leave_grace, lease=args.lease, observe=False).start()
    try:
        device = session.open_device(user=args.user, device=device_id, name=args.name)
        if (error := _await_first_connect(device, lambda: device.connected)) is not None:
            return _unreachable(error)
        print(json.dumps({"joined": args.user, "device": device_id, "epoch": device.epoch}), flush=True)
        _wait(stop)
    finally:
        session.close(timeout=2.0)
    return 0


def _acl(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .broker_acl import accounts_for, write_bundle

    try:
        accounts = accounts_for(org=args.org, server_accounts=args.server_account, users=args.user, topic_prefix=args.topic_prefix)
    except ValueError as exc:  # InvalidId is one too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bundle = write_bundle(Path(args.out), org=args.org, accounts=accounts)
    print(f"wrote {bundle.acl} and {bundle.passwd} for {len(accounts)} accounts; passwords in {bundle.credentials} (mode 0600)")
    if bundle.created:
        print(f"new passwords for: {', '.join(bundle.created)}")
    return 0


PING_INTERVAL = "5"
"""Seconds between the server's WebSocket pings unless told otherwise: a tab whose
network silently drops is noticed within about twice this (guarantee 2)."""


def _run(args: argparse.Namespace) -> int:
    from .app_file import load_app_file

    path = Path(args.file).resolve()
    try:
        load_app_file(path)  # every problem (unset variables too) before anything starts
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    options = _with_defaults(args.streamlit_options, {"server.websocketPingInterval": PING_INTERVAL})
    _become_streamlit("run_app.py", path, options)


def _edit(args: argparse.Namespace) -> int:
    from .app_document import AppDocument
    from .embedded_broker import free_port

    path = Path(args.file).resolve()
    AppDocument.open(path)  # an unreadable file or text that is not a YAML mapping: say so now
    options = _with_defaults(
        args.streamlit_options,
        {"server.address": "127.0.0.1", "server.port": str(free_port()), "server.websocketPingInterval": PING_INTERVAL},
    )
    address, port = _option(options, "server.address"), _option(options, "server.port")
    print(f"Editing {path} at http://{address}:{port}", flush=True)
    _become_streamlit("editor_app.py", path, options)


def _with_defaults(options: list[str], defaults: dict[str, str]) -> list[str]:
    """Streamlit options as given, plus `--NAME VALUE` for each default not given."""
    return options + [part for name, value in defaults.items() if _option(options, name) is None for part in (f"--{name}", value)]


def _option(options: list[str], name: str) -> str | None:
    for i, option in enumerate(options):
        if option == f"--{name}" and i + 1 < len(options):
            return options[i + 1]
        if option.startswith(f"--{name}="):
            return option.partition("=")[2]
    return None


def _become_streamlit(script: str, app_file: Path, options: list[str]) -> NoReturn:
    from .apps import APP_FILE_VARIABLE

    apps = Path(__file__).resolve().parent / "apps"
    env = dict(os.environ)
    env[APP_FILE_VARIABLE] = str(app_file)
    # `streamlit run` puts the script's folder on sys.path, not the one that holds `components`
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(apps.parent.parent), env.get("PYTHONPATH")]))
    os.execve(sys.executable, [sys.executable, "-m", "streamlit", "run", str(apps / script), *options], env)


def _unreachable(reason: str) -> int:
    print(f"error: broker unreachable: {reason}", file=sys.stderr)
    return EXIT_BROKER_UNREACHABLE


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    # errors reach stderr as one line each, below; the kit's log only with --verbose
    kit_log = logging.getLogger(__package__)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        return _command(args)
    propagates = kit_log.propagate
    kit_log.propagate = False  # and Python's last-resort handler stays silent: no handler is missing
    kit_log.addHandler(silent := logging.NullHandler())
    try:
        return _command(args)
    finally:  # main() may run inside another program (or a test): leave its logging as it was
        kit_log.removeHandler(silent)
        kit_log.propagate = propagates


def _command(args: argparse.Namespace) -> int:
    try:
        if args.command == "watch":
            return _watch(args)
        if args.command == "join":
            return _join(args)
        if args.command == "acl":
            return _acl(args)
        if args.command == "validate":
            from .app_file import validate_command

            return validate_command(args.files, require_env=args.require_env, stderr=sys.stderr)
        if args.command == "run":
            return _run(args)
        if args.command == "edit":
            return _edit(args)
        if args.command == "schema":
            from .app_file import schema_command

            return schema_command(stdout=sys.stdout)
    except (PresenceKitError, ValueError) as exc:  # bad input: an id, a URL, a lease
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")
