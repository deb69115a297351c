"""A server process with a chat history, for the restart tests:

    python tests/history_child.py BROKER_PORT TOPIC_PREFIX HISTORY_URL TABLE

Prints one JSON object a line: {"ready": true} once synced with the broker, {"seen": ID}
for every chat its observer receives (so it is queued for the history), {"sent": ID}
once a line `send TEXT` on stdin was stored and published by its bot, and
{"history": [ID, ...]} (oldest first, every page) for a line `history`. SIGTERM closes
the session cleanly, as a server's shutdown does.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from components import BrokerSettings, ChatReceived, PresenceSession, open_history_store

ORG, ROOM = "acme", "lobby"
_print_lock = threading.Lock()


def say(**fields: object) -> None:
    with _print_lock:
        print(json.dumps(fields), flush=True)


def all_history(session: PresenceSession) -> list[str]:
    ids: list[str] = []
    page = session.history(ROOM, limit=7)
    while page:
        ids = [m.id for m in page] + ids
        page = session.history(ROOM, before=page[0].id, limit=7)
    return ids


def main(port: str, prefix: str, url: str, table: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds the with-block: a clean close
    settings = BrokerSettings(host="127.0.0.1", port=int(port), topic_prefix=prefix, keepalive=5)
    with PresenceSession(settings, org=ORG, rooms=[ROOM], history_store=open_history_store(url, table=table)) as session:
        session.subscribe(lambda event: say(seen=event.message.id) if isinstance(event, ChatReceived) else None)
        bot = session.open_device(user="bot", device=f"d{port}")
        if not (session.wait_synced(10) and bot.wait_connected(10)):
            raise SystemExit("not connected to the broker")
        say(ready=True)
        for line in sys.stdin:
            command, _, text = line.strip().partition(" ")
            if command == "send":
                say(sent=bot.send_chat(ROOM, text).id)
            elif command == "history":
                say(history=all_history(session))


if __name__ == "__main__":
    main(*sys.argv[1:5])
