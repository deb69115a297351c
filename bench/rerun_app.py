"""The demo app with its page run through bench/rerun_page.py, which counts script
runs: `streamlit run bench/rerun_app.py` (row 5 counts Streamlit reruns with it)."""

import os
from pathlib import Path

import streamlit as st

from components.kit import PresenceKit

HERE = Path(__file__).resolve().parent
kit = PresenceKit.from_app_file(os.environ["PRESENCE_APP_FILE"])
app = st.App(HERE / "rerun_page.py", routes=kit.routes, lifespan=kit.lifespan)
