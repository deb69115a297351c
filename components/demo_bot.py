"""The demo's bot: a headless device of the shared session (no browser, no Streamlit)
that is online in a room, reads what people write, types for a moment and answers.
It shows that bots and agents appear exactly like people: same presence, same typing,
same receipts, same chat.

Its answer is sent from a timer thread of its own: with a history store, send_chat
blocks for the write, which must never happen on the network thread."""

from __future__ import annotations

import logging
import threading

from .device import Device
from .errors import HistoryUnavailable
from .events import ChatReceived, Event
from .session import PresenceSession

log = logging.getLogger(__name__)

TYPING_FOR = 1.2
"""Seconds the bot types before it answers, so people see it typing."""


class DemoBot:
    def __init__(
        self,
        session: PresenceSession,
        *,
        room: str,
        send_receipts: bool,
        user: str = "helper-bot",
        name: str = "Helper bot",
    ) -> None:
        self.session = session
        self.room = room
        self.send_receipts = send_receipts
        self.user = user
        self.name = name
        self.device: Device | None = None
        self._unsubscribe = None
        self._answers: set[threading.Timer] = set()

    def start(self) -> DemoBot:
        self.device = self.session.open_device(user=self.user, device="bot", name=self.name, rooms=[self.room])
        self._unsubscribe = self.session.subscribe(self._on_event)
        return self

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for answer in list(self._answers):
            answer.cancel()
        if self.device is not None:
            self.device.close()

    def _on_event(self, event: Event) -> None:
        """Session listener: never blocks; the answer goes out from a timer thread."""
        if not isinstance(event, ChatReceived) or self.device is None:
            return
        message = event.message
        if message.room != self.room or message.user == self.user:
            return
        device = self.device
        if self.send_receipts:  # a private room never gets receipts from this server
            device.mark_read(self.room, message)
        device.typing(self.room, ttl=TYPING_FOR + 2)
        reply = f"Hi {message.name or message.user}! I'm a bot on the same MQTT session as you. You said: “{message.text[:80]}”"
        answer = threading.Timer(TYPING_FOR, lambda: self._answer(reply, answer))
        answer.name, answer.daemon = "demo-bot-answer", True
        self._answers.add(answer)
        answer.start()

    def _answer(self, reply: str, answer: threading.Timer) -> None:
        self._answers.discard(answer)
        if self.device is not None and not self.device.closed:
            self.device.typing(self.room, active=False)
            try:
                self.device.send_chat(self.room, reply)
            except HistoryUnavailable as exc:
                log.info("the demo bot's answer was not sent: %s", exc)
