"""Field presence as people see it (issue 13), in headless Chromium on the demo page's
shared record: who edits which field shows on the others' pages within 1 s, a locked
field is read-only until its holder leaves it or closes their tab (within the leave
grace + 1 s), names are text, the presence list says where people edit, and follow
mode follows."""

from __future__ import annotations

import pytest

from components.identity import user_id_for

from e2e_pages import app_file, member, open_tab, seconds_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GRACE = 2.0
APP = app_file("""
  - type: presence_list
  - type: field_presence
    room: lobby
    lock: true
    follow: true
""", grace=GRACE)


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP)


def field(page, key: str):
    return page.locator(f".st-key-{key}")


def editors(page, key: str) -> list[str]:
    return (field(page, key).get_attribute("data-editors") or "").split()


def read_only(page, key: str) -> bool:
    return page.locator(f".st-key-{key} input, .st-key-{key} textarea").first.evaluate("node => node.readOnly")


def test_a_locked_field_is_read_only_for_the_other_until_its_holder_leaves_it(server, browser_context, people) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page, ben_page = open_tab(browser_context(), server, ana), open_tab(browser_context(), server, ben)
    ana_page.locator(".st-key-title input").click()
    took = seconds_until(lambda: editors(ben_page, "title") == [ana], timeout=5)
    assert took is not None and took <= 1.0, f"data-editors after {took} s"
    assert read_only(ben_page, "title") and field(ben_page, "title").get_attribute("data-locked-by") == ana
    assert f"{ana} is editing" in field(ben_page, "title").locator(".pk-field-label").inner_text()
    assert editors(ana_page, "title") == [] and not read_only(ana_page, "title"), "nobody is outlined to themselves"

    ana_page.keyboard.type("Roadmap")
    ben_page.locator(".st-key-title input").click()  # looking is allowed: Ben waits in the field
    ben_page.keyboard.type("mine")
    assert ben_page.locator(".st-key-title input").input_value() == ""
    assert ana_page.locator(".st-key-title input").input_value() == "Roadmap"

    ana_page.locator(".st-key-notes textarea").click()  # Ana leaves the title for the notes
    took = seconds_until(lambda: not read_only(ben_page, "title"), timeout=5)
    assert took is not None and took <= 1.0, f"the lock was released after {took} s"
    assert editors(ben_page, "notes") == [ana] and editors(ben_page, "title") == []
    ben_page.keyboard.type("mine")  # Ben was waiting in the field: it is his now
    assert ben_page.locator(".st-key-title input").input_value() == "mine"
    assert seconds_until(lambda: read_only(ana_page, "title") and editors(ana_page, "title") == [ben], timeout=2) is not None


def test_three_people_names_as_text_where_they_are_follow_mode_and_a_closed_tab_frees_its_lock(server, browser_context, people) -> None:
    ana_name = f"<b>Ana</b> {people('x')}"  # a name with markup
    ana, ben, cy = user_id_for(ana_name), people("ben"), people("cy")
    ana_page = open_tab(browser_context(), server, ana_name)
    ben_page, cy_page = open_tab(browser_context(), server, ben), open_tab(browser_context(), server, cy)
    ana_page.locator(".st-key-notes textarea").click()
    assert seconds_until(lambda: editors(cy_page, "notes") == [ana] and editors(ben_page, "notes") == [ana], timeout=5) is not None
    label = field(cy_page, "notes").locator(".pk-field-label")
    assert label.inner_text() == f"{ana_name} is editing" and label.locator("b").count() == 0, "a name became markup"

    # where everyone is: the presence list says it, and a click shows the field
    entry = member(cy_page, ana)
    assert seconds_until(lambda: "editing Notes" in entry.inner_text(), timeout=3) is not None
    entry.locator(".pk-text").click()
    assert field(cy_page, "notes").get_attribute("data-pk-highlight") == ana

    # follow mode: Ben follows Ana, Ana sees it; Ben's view goes where she goes
    ben_page.locator(f'.pk-field-person[data-user="{ana}"] .pk-follow').click()
    assert seconds_until(lambda: "follows you" in ana_page.locator(".pk-followers").inner_text(), timeout=3) is not None
    ana_page.locator(".st-key-status input").click()
    assert seconds_until(lambda: field(ben_page, "status").get_attribute("data-pk-highlight") == ana, timeout=3) is not None
    ana_page.locator(".pk-followable").click()  # Ana turns being followed off
    assert seconds_until(lambda: "turned following off" in ben_page.locator(".pk-fields-status").inner_text(), timeout=3) is not None

    ana_page.close()  # the holder's tab closes: the lock goes with her device, after the leave grace
    took = seconds_until(lambda: editors(ben_page, "status") == [] and editors(cy_page, "status") == [], timeout=GRACE + 5)
    assert took is not None and took <= GRACE + 1, f"a closed tab's lock freed after {took} s"
    assert not read_only(cy_page, "status")
