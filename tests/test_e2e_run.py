"""`python -m components run APP.yaml`: an app served from its YAML file alone, in
real headless Chromium tabs (two people who see each other)."""

from __future__ import annotations

import pytest

from components.identity import user_id_for

from e2e_pages import member, open_tab
from helpers import REPO
from streamlit_server import StreamlitServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_the_demo_file_runs_alone_and_two_people_see_each_other(browser_context, people, tmp_path) -> None:
    # MQTT_URL empty and no url in the file: the kit starts its embedded broker
    server = StreamlitServer(
        app_file=REPO / "examples" / "demo.yaml", broker_url="", log_dir=tmp_path,
        cli=["run", str(REPO / "examples" / "demo.yaml")],
    )
    try:
        assert server.health()["broker"]["url"].startswith("mqtt://127.0.0.1:")
        ana, ben = people("ana"), people("ben")
        ana_page = open_tab(browser_context(), server, ana)
        ben_page = open_tab(browser_context(), server, ben)
        member(ana_page, user_id_for(ben), "online").wait_for(timeout=5000)
        member(ben_page, user_id_for(ana), "online").wait_for(timeout=5000)
        assert ana_page.title() == "demo"  # no page title in the file: the org id
        assert ana_page.locator(".st-key-canvas").count() == 1  # the cursor overlay's region
        assert ana_page.locator(".pk-chat").count() == 1
    finally:
        server.stop()


def test_the_page_takes_title_icon_and_layout_from_the_file(browser_context, people, tmp_path, e2e_broker) -> None:
    app_file = tmp_path / "team.yaml"
    app_file.write_text(
        "version: 1\norg: e2e\nrooms: [lobby]\nidentity: {source: query_param}\n"
        "page: {title: Team room, icon: '🟢', layout: wide}\nwidgets:\n  - type: presence_list\n"
    )
    server = StreamlitServer(app_file=app_file, broker_url=e2e_broker.url, log_dir=tmp_path, cli=["run", str(app_file)])
    try:
        page = open_tab(browser_context(), server, people("cy"))
        assert page.title() == "Team room"
        assert page.locator("h1").inner_text() == "Team room"
        # wide: the main block spans (nearly) the whole 1100 px viewport
        assert page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 900
    finally:
        server.stop()
