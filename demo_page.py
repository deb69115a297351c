"""The demo's page script (see demo_app.py): who you are, who is here, and the room."""

import os
from pathlib import Path

import streamlit as st

from components.identity import ask_for_name
from components.ids import ID_PATTERN
from components.kit import PresenceKit
from components.settings import CursorOverlaySettings, FieldPresenceSettings

HERE = Path(__file__).resolve().parent
kit = PresenceKit.from_app_file(os.environ.get("PRESENCE_APP_FILE", HERE / "examples" / "demo.yaml"))

st.set_page_config(page_title="Presence demo", page_icon="🟢", layout="wide")
st.title("Who's here")
st.caption(kit.broker_note())

me = kit.identify() or ask_for_name()
if me is None:
    st.info("Pick a name to join (or open this page with ?user=NAME).")
    st.stop()

room = st.query_params.get("room")
where = f" in room `{room}`" if room and ID_PATTERN.fullmatch(room) else ""
st.markdown(f"You are **{me.name}** (`{me.user}`){where}. Open this page in another tab as someone else (add `?room=NAME` for a room of your own).")

main, side = st.columns([2, 1])
with side:
    kit.render(me, only=["presence_list", "read_receipts", "typing_indicator"])
with main:
    kit.render(me, only=["chat_panel", "reactions"])
    if kit.widgets_of(FieldPresenceSettings):
        st.subheader("A shared record")
        st.caption("Click a field: the others see you there, and with a lock it is yours until you leave it.")
        st.text_input("Title", key="title")
        st.text_area("Notes", key="notes", height=100)
        st.selectbox("Status", ["Open", "In progress", "Done"], key="status")
        kit.render(me, only=["field_presence"])
for overlay in kit.widgets_of(CursorOverlaySettings):
    with st.container(key=overlay.region or "canvas", border=True, height=260):
        st.markdown("**Shared canvas**: move your pointer here and watch the other tabs.")
    kit.render(me, [overlay])
