"""The widgets of an app file on a page, in the file's order: what `run` shows and
what the editor's preview shows."""

import streamlit as st

from components.identity import Identity
from components.kit import PresenceKit
from components.settings import CursorOverlaySettings

REGION_HEIGHT = 260


def render_in_order(kit: PresenceKit, me: Identity) -> None:
    """Every widget in order; a cursor overlay's `region` is made where the overlay
    stands (once per region), since no page script of the builder's makes it."""
    regions: set[str] = set()
    for widget in kit.settings.widgets:
        if isinstance(widget, CursorOverlaySettings) and widget.region and widget.region not in regions:
            regions.add(widget.region)
            with st.container(key=widget.region, border=True, height=REGION_HEIGHT):
                st.caption("Move your pointer here: everyone in the room sees it.")
        kit.render(me, [widget])
