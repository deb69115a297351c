"""The demo: `streamlit run demo_app.py`, then open the page in a few tabs.

Every tab is a person (a device with its own MQTT will); the page shows who is here,
a chat with typing and read receipts, reaction bursts and live cursors, plus a bot that
answers. With no broker configured an embedded one is started; set MQTT_URL (e.g.
mqtt://127.0.0.1:1883) to use a real broker, and the same on a second server to see the
same people there. PRESENCE_APP_FILE picks another app file; PRESENCE_DEMO_BOT=0 leaves
the bot out.
"""

import contextlib
import os
from pathlib import Path

import streamlit as st

from components.demo_bot import DemoBot
from components.kit import PresenceKit

HERE = Path(__file__).resolve().parent
kit = PresenceKit.from_app_file(os.environ.get("PRESENCE_APP_FILE", HERE / "examples" / "demo.yaml"))


@contextlib.asynccontextmanager
async def lifespan(app):
    async with kit.lifespan(app):
        if os.environ.get("PRESENCE_DEMO_BOT", "1") == "0" or kit.session is None:  # no bot, or no kit (see kit.start_error)
            yield
            return
        room = kit.settings.rooms[0]
        bot = DemoBot(kit.session, room=room, send_receipts=room not in kit.private_receipt_rooms()).start()
        try:
            yield
        finally:
            bot.stop()


app = st.App(HERE / "demo_page.py", routes=kit.routes, lifespan=lifespan)
