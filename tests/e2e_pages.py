"""Driving the demo page in Chromium: open a tab as someone, find list entries."""

from __future__ import annotations

import textwrap
import time

import pytest

from components.identity import user_id_for

from helpers import wait_for


def app_file(widgets: str, *, keepalive: int = 2, grace: float = 2.0) -> str:
    """The text of an e2e app file (org e2e, room lobby, ?user= identities) with these
    widget entries (YAML list items)."""
    return (
        "version: 1\n"
        f"broker: {{keepalive: {keepalive}, leave_grace: {grace}}}\n"
        "org: e2e\nrooms: [lobby]\nidentity: {source: query_param}\nwidgets:\n"
        + textwrap.dedent(widgets).strip("\n") + "\n"
    )


def open_tab(context, server, name: str, *, base_url: str | None = None, room: str | None = None):
    """A new tab on the demo page as `name` (in `room`, chosen with ?room=); returns once
    the tab knows itself online (its own presence came back from the broker)."""
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(f"{base_url or server.url}/?user={name}" + (f"&room={room}" if room else ""))
    page.wait_for_function(
        "user => { const kit = window.__presenceKit; const me = kit && kit.users.get(user); return !!me && me.status === 'online'; }",
        arg=user_id_for(name),
        timeout=20_000,
    )
    return page


def send_chat(page, text: str) -> None:
    """Type `text` in the page's chat composer and press Enter."""
    page.locator("textarea.pk-input").fill(text)
    page.locator("textarea.pk-input").press("Enter")


def message(page, text: str):
    """The chat panel's messages that show `text`."""
    return page.locator(".pk-msg").filter(has_text=text)


def member(page, user: str, status: str | None = None):
    selector = f'li.pk-member[data-user="{user}"]' + (f'[data-status="{status}"]' if status else "")
    return page.locator(selector)


def shown_status(page, user: str) -> str | None:
    items = member(page, user)
    return items.first.get_attribute("data-status") if items.count() else None


def seconds_until(predicate, *, timeout: float) -> float | None:
    start = time.monotonic()
    if wait_for(predicate, timeout=timeout, interval=0.02):
        return time.monotonic() - start
    return None
