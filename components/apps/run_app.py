"""`python -m components run APP.yaml`: the app described by one YAML file, served
with no Python file of the builder's (the page is run_page.py)."""

import os
from pathlib import Path

import streamlit as st

from components.apps import APP_FILE_VARIABLE
from components.kit import PresenceKit

kit = PresenceKit.from_app_file(os.environ[APP_FILE_VARIABLE])
app = st.App(Path(__file__).with_name("run_page.py"), routes=kit.routes, lifespan=kit.lifespan)
