"""The page of `python -m components run APP.yaml`: title, icon and layout from the
file's `page`, who you are from its `identity`, then every widget in the file's order."""

import os

import streamlit as st

from components.apps import APP_FILE_VARIABLE
from components.apps.page_widgets import render_in_order
from components.identity import ask_for_name
from components.kit import PresenceKit

kit = PresenceKit.from_app_file(os.environ[APP_FILE_VARIABLE])
page = kit.settings.page
title = page.title or kit.settings.org
st.set_page_config(page_title=title, page_icon=page.icon, layout=page.layout)
st.title(title)

me = kit.identify()
source = kit.settings.identity.source
if me is None and source == "query_param":
    me = ask_for_name()
if me is None:
    if source == "streamlit_login":
        st.button("Log in", on_click=st.login, type="primary")
    elif source == "header":
        st.error(f"This app expects the {kit.settings.identity.header} header from its reverse proxy, and it is missing.")
    else:
        st.info("Pick a name to join (or open this page with ?user=NAME).")
    st.stop()

render_in_order(kit, me)
