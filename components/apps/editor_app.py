"""`python -m components edit APP.yaml`: the visual editor (editor_page.py) and the
server side of its live preview (components.apps.preview)."""

import os
from pathlib import Path

import streamlit as st

from components.apps import APP_FILE_VARIABLE
from components.apps.preview import preview_world

world = preview_world(os.environ[APP_FILE_VARIABLE])
app = st.App(Path(__file__).with_name("editor_page.py"), routes=world.routes, lifespan=world.lifespan)
