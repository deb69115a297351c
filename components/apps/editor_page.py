"""The visual editor's page: the app file's settings and widgets as forms generated
from the schema (components.app_form), the checker's messages next to the fields and
all together at the top, Save (refused while the file has problems), and beside it a
live preview of the widgets with simulated people (components.apps.preview)."""

import os
from pathlib import Path

import streamlit as st

from components.app_document import AppDocument
from components.app_form import app_form
from components.apps import APP_FILE_VARIABLE
from components.apps.editor_form import FormRenderer
from components.apps.page_widgets import render_in_order
from components.apps.preview import preview_world
from components.errors import ConfigError
from components.identity import Identity
from components.simulated_people import PEOPLE

PREVIEW_IDENTITY = Identity("editor", "You")

path = Path(os.environ[APP_FILE_VARIABLE])
st.set_page_config(page_title=f"Editing {path.name}", page_icon="✏️", layout="wide")
state = st.session_state
if "doc" not in state:
    state.doc = AppDocument.open(path)
    state.uids = list(range(len(state.doc.widgets())))  # input keys that move with their widget
    state.next_uid = len(state.uids)
doc: AppDocument = state.doc
form = app_form()


# -- edits that are not a single value (callbacks run before the page) ----------------------
def add_widget() -> None:
    doc.add_widget(state["add-kind"])
    state.uids.append(state.next_uid)
    state.next_uid += 1


def move_widget(index: int, by: int) -> None:
    doc.move_widget(index, by)
    state.uids.insert(index + by, state.uids.pop(index))


def remove_widget(index: int) -> None:
    doc.remove_widget(index)
    del state.uids[index]


def save() -> None:
    try:
        check = doc.save()
    except ConfigError as exc:
        state.notice = ("error", f"Not saved: fix what is marked first ({len(exc.problems)} problem(s)).")
    else:
        unset = f" It refers to {len(check.unset)} environment variable(s) that must be set where it runs." if check.unset else ""
        state.notice = ("success", f"Saved {path.name}.{unset}")


check = doc.check()
plain = doc.plain()
plain = plain if isinstance(plain, dict) else {}
widgets = plain.get("widgets") if isinstance(plain.get("widgets"), list) else []
while len(state.uids) < len(widgets):  # a list the file wrote in an odd way: keep keys unique
    state.uids.append(state.next_uid)
    state.next_uid += 1

st.title(f"Editing {path.name}")
tools, status = st.columns([1, 5], vertical_alignment="center")
tools.button("Save", type="primary", on_click=save, key="save", use_container_width=True)
if check.problems:
    status.error(f"{len(check.problems)} problem(s): the file cannot be saved until they are fixed.", icon=":material/error:")
else:
    status.success("The file is valid.", icon=":material/check_circle:")
if notice := state.pop("notice", None):
    (st.success if notice[0] == "success" else st.error)(notice[1])
with st.expander("What `validate` says", expanded=False):
    st.code("\n".join(map(str, check.findings(require_env=False))) or "(nothing: the file is valid)", language=None)

edit, show = st.columns([3, 2], gap="large")
renderer = FormRenderer(doc, check.findings(require_env=False))
with edit:
    st.subheader("App")
    renderer.messages(())
    renderer.fields(form.fields, (), plain, key="app", order=form.order)
    st.subheader("Widgets")
    renderer.messages(("widgets",))
    for index, widget in enumerate(widgets):
        uid = state.uids[index]
        kind = widget.get("type") if isinstance(widget, dict) else None
        widget_form = form.widgets.get(kind) if isinstance(kind, str) else None
        with st.container(border=True, key=f"widget-{index}"):
            title, up, down, remove = st.columns([8, 1, 1, 1], vertical_alignment="center")
            title.markdown(f"**{index + 1}. `{kind}`** {widget_form.description if widget_form else ''}")
            up.button("↑", key=f"up-{uid}", on_click=move_widget, args=(index, -1), disabled=index == 0, help="Move up")
            down.button("↓", key=f"down-{uid}", on_click=move_widget, args=(index, 1), disabled=index == len(widgets) - 1, help="Move down")
            remove.button("✕", key=f"remove-{uid}", on_click=remove_widget, args=(index,), help="Remove this widget")
            renderer.messages(("widgets", index))
            renderer.messages(("widgets", index, "type"))
            if widget_form is not None:
                renderer.fields(widget_form.fields, ("widgets", index), widget, key=f"w{uid}", columns=2)
    kind_column, add_column = st.columns([4, 1], vertical_alignment="bottom")
    kind_column.selectbox(
        "Add a widget", options=list(form.widgets), key="add-kind",
        format_func=lambda kind: f"{kind}: {form.widgets[kind].description}",
    )
    add_column.button("Add", on_click=add_widget, key="add-widget", use_container_width=True)

with show:
    st.subheader("Preview")
    if check.settings is not None:
        state.last_valid = check.settings
    settings = state.get("last_valid")
    kit = preview_world(str(path)).show(settings) if settings is not None else None
    if kit is None:
        st.info("The preview starts when the file is valid and the editor runs as `python -m components edit`.")
    else:
        if check.settings is None:
            st.caption("The file has problems: the preview shows its last valid version.")
        names = ", ".join(name for _, name in PEOPLE)
        st.caption(f"With simulated people ({names}) who join, type, chat, react and move their cursors.")
        render_in_order(kit, PREVIEW_IDENTITY)
