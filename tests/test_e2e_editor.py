"""`python -m components edit`: the visual editor in real headless Chromium, from
examples/demo.yaml to a saved file, with the live preview's simulated people.

Set PRESENCE_DOCS_SCREENSHOTS=1 to also write docs/editor.png (the README's picture)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from components.app_file import check_app_file, load_app_file
from components.settings import TypingIndicatorSettings
from components.simulated_people import PEOPLE

from e2e_pages import member
from helpers import REPO, wait_for
from streamlit_server import StreamlitServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_edit_the_demo_add_a_typing_indicator_fix_its_ttl_and_save(chromium, tmp_path) -> None:
    path = tmp_path / "demo.yaml"
    shutil.copy(REPO / "examples" / "demo.yaml", path)
    original_text = path.read_text(encoding="utf-8")
    original = load_app_file(path)
    # the editor's preview never uses MQTT_URL: this one points nowhere on purpose
    server = StreamlitServer(app_file=path, broker_url="mqtt://127.0.0.1:9", log_dir=tmp_path, cli=["edit", str(path)])
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(server.url)
        page.get_by_text("The file is valid.").wait_for(timeout=20_000)

        # the preview: the simulated people are online there, and they act
        for user, _ in PEOPLE:
            member(page, user, "online").wait_for(timeout=10_000)

        # add a typing indicator (it becomes the last of the widgets)
        choose = page.locator(".st-key-add-kind input")
        choose.click()
        choose.fill("typing_indicator")
        page.get_by_role("option", name=re.compile(r"^typing_indicator")).click()
        page.locator(".st-key-add-widget button").click()
        ttl = page.locator(f".st-key-field-widgets-{len(original.widgets)}-ttl")  # only a typing indicator has `ttl`
        ttl.wait_for(timeout=10_000)
        assert page.locator(".pk-typing").count() == 2 or wait_for(lambda: page.locator(".pk-typing").count() == 2, timeout=10)

        # out of range: the schema's message, next to the field; saving is refused
        ttl.locator("input").fill("500")
        ttl.locator("input").press("Enter")
        ttl.get_by_text("500 is greater than the maximum of 120").wait_for(timeout=10_000)
        page.locator(".st-key-save button").click()
        page.get_by_text("Not saved: fix what is marked first").wait_for(timeout=10_000)
        assert path.read_text(encoding="utf-8") == original_text

        # fixed, saved
        ttl.locator("input").fill("8")
        ttl.locator("input").press("Enter")
        assert wait_for(lambda: ttl.get_by_text("is greater than").count() == 0, timeout=10)
        page.locator(".st-key-save button").click()
        page.get_by_text(f"Saved {path.name}.").wait_for(timeout=10_000)

        # the preview is lively: someone simulated types in the new indicator's room
        assert wait_for(lambda: page.locator('.pk-typing[data-typists*="sim-"]').count() > 0, timeout=30), "nobody typed"
        if os.environ.get("PRESENCE_DOCS_SCREENSHOTS"):
            page.screenshot(path=str(REPO / "docs" / "editor.png"))
    finally:
        context.close()
        server.stop()

    check = check_app_file(path)
    assert check.problems == () and check.unset == ()
    saved = check.settings
    assert saved.widgets == (*original.widgets, TypingIndicatorSettings(id=None, room="lobby", ttl=8))
    assert (saved.org, saved.rooms, saved.broker, saved.identity) == (original.org, original.rooms, original.broker, original.identity)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("".join(original_text.splitlines(keepends=True)[:3]))  # the comments stay
    assert text == original_text + "  - type: typing_indicator\n    ttl: 8\n"
