"""The demo: `streamlit run demo_app.py`, then open the page in a few tabs.

Every tab is a person (a device with its own MQTT will); the presence list shows
everyone, live. With no broker configured an embedded one is started; set MQTT_URL
(e.g. mqtt://127.0.0.1:1883) to use a real broker, and the same on a second server
to see the same people there. PRESENCE_APP_FILE picks another app file.
"""

import os
from pathlib import Path

import streamlit as st

from components.kit import PresenceKit

HERE = Path(__file__).resolve().parent
kit = PresenceKit.from_app_file(os.environ.get("PRESENCE_APP_FILE", HERE / "examples" / "demo.yaml"))
app = st.App(HERE / "demo_page.py", routes=kit.routes, lifespan=kit.lifespan)
