"""The widgets as people with any theme, any input device and a screen reader meet them
(issue 15), in headless Chromium on the demo page with several people, chat, typing,
receipts and reactions on screen:

- axe-core (tests/node_modules, `npm ci` in tests/) finds no serious or critical
  violation in anything the kit draws, in Streamlit's light and dark themes (one server,
  the browser's colour scheme) and in a custom theme (a second server);
- the presence list's DOM is not touched while another person moves a cursor;
- with prefers-reduced-motion, reaction bursts fade in place instead of rising;
- every control works from the keyboard alone, with a visible focus;
- a page restored from the back/forward cache is live again.

Cost: two Streamlit servers, and one browser of this module's own (Playwright's default
arguments turn the back/forward cache off), whose pages the tests share.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.identity import user_id_for

from e2e_pages import app_file, member, message, open_tab, send_chat
from helpers import wait_for
from streamlit_server import StreamlitServers

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
APP = app_file("""
  - type: presence_list
    title: Who's here
  - type: presence_list
    id: lobby-counter
    room: lobby
    title: In the lobby
    counter_above: 1
  - type: typing_indicator
    room: lobby
  - type: read_receipts
    room: lobby
  - type: chat_panel
    room: lobby
    height: 200
  - type: reactions
    room: lobby
  - type: cursor_overlay
    room: lobby
    region: canvas
  - type: field_presence
    room: lobby
    follow: true
""")
CUSTOM_THEME = {  # a warm light theme with a violet primary and a serif font
    "STREAMLIT_THEME_BASE": "light",
    "STREAMLIT_THEME_PRIMARY_COLOR": "#6d28d9",
    "STREAMLIT_THEME_BACKGROUND_COLOR": "#fdf6e3",
    "STREAMLIT_THEME_SECONDARY_BACKGROUND_COLOR": "#eee8d5",
    "STREAMLIT_THEME_TEXT_COLOR": "#073642",
    "STREAMLIT_THEME_FONT": "serif",
}

# the element focused now, through the shadow roots the widgets render in
DEEP_ACTIVE = "(() => { let a = document.activeElement; while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement; return a; })()"
# every element the kit draws: its components' element containers (keys presence-kit-*),
# the cursor layer and the labels it puts on the page's fields
KIT_ELEMENTS = """() => [
  ...document.querySelectorAll('[class*="st-key-presence-kit-"], .pk-cursor-layer, .pk-field-label'),
]"""


@pytest.fixture(scope="module")
def browser(chromium):
    """A browser with the back/forward cache on (Playwright's defaults turn it off)."""
    from conftest import CHROMIUM, CHROMIUM_ARGS

    own = chromium.browser_type.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, ignore_default_args=["--disable-back-forward-cache"],
    )
    yield own
    own.close()


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP)


@pytest.fixture(scope="module")
def custom_server(e2e_broker, tmp_path_factory):
    """The same app in a custom theme, on the same broker (so the same people)."""
    servers = StreamlitServers(broker_url=e2e_broker.url, directory=tmp_path_factory.mktemp("themed"))
    yield servers.start(APP, env={"PRESENCE_DEMO_BOT": "0", **CUSTOM_THEME})
    servers.stop()


@pytest.fixture(scope="module")
def names():
    suffix = str(time.monotonic_ns())[-5:]
    return {who: f"{who}-{suffix}" for who in ("ana", "ben", "cy", "dee", "eve")}


@pytest.fixture(scope="module")
def others(browser, server, names):
    """Ben and Cy, in the lobby for the whole module."""
    contexts = [browser.new_context(viewport={"width": 1100, "height": 800}) for _ in range(2)]
    pages = {who: open_tab(context, server, names[who]) for who, context in zip(("ben", "cy"), contexts)}
    yield pages
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def ana(browser, server, names, others):
    """Ana's page in the light theme (the browser's colour scheme picks Streamlit's theme)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme="light")
    page = open_tab(context, server, names["ana"])
    yield page
    context.close()


def kit_roots(page, selector: str) -> int:
    return page.evaluate(f"""() => [...document.querySelectorAll('*')]
        .filter((host) => host.shadowRoot).flatMap((host) => [...host.shadowRoot.querySelectorAll({selector!r})]).length""")


def test_the_presence_list_is_untouched_while_someone_moves_a_cursor(ana, others, names) -> None:
    ben = others["ben"]
    member(ana, user_id_for(names["cy"]), "online").wait_for(timeout=5000)
    ana.evaluate("""() => {
        window.__mutations = [];
        window.__cursorFrames = 0;
        window.__presenceKit.subscribe(() => { window.__cursorFrames += 1; }, ['cursors']);
        const lists = [...document.querySelectorAll('*')].filter((host) => host.shadowRoot)
            .flatMap((host) => [...host.shadowRoot.querySelectorAll('.pk-presence')]);
        const observer = new MutationObserver((records) => {
            for (const r of records) window.__mutations.push(`${r.type} ${r.attributeName || ''} ${r.target.className || r.target.nodeName}`);
        });
        for (const list of lists) observer.observe(list, { subtree: true, childList: true, attributes: true, characterData: true });
        return lists.length;
    }""")
    assert kit_roots(ana, ".pk-presence") == 2
    ben.locator(".st-key-canvas").scroll_into_view_if_needed()
    box = ben.locator(".st-key-canvas").bounding_box()
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 3.0:  # a 20 Hz stream of cursor frames for 3 s
        step += 1
        ben.mouse.move(box["x"] + box["width"] * (0.1 + (step % 80) / 100), box["y"] + box["height"] * (0.3 + (step % 7) / 20))
        time.sleep(0.02)
    ana.locator(f'.pk-cursor[data-user="{user_id_for(names["ben"])}"]').wait_for(state="attached", timeout=3000)
    frames, mutations = ana.evaluate("[window.__cursorFrames, window.__mutations]")
    assert frames >= 20, f"only {frames} cursor frames reached the page: the test would prove nothing"
    assert mutations == [], f"{len(mutations)} mutations of the presence lists during {frames} cursor frames: {mutations[:10]}"


def on_screen(page, others, names, text: str) -> list[str]:
    """Chat (with a receipt under it), someone typing and a reaction burst on `page`;
    returns the animations the bursts got (read as they came: they last 1.4 s)."""
    ben, cy = others["ben"], others["cy"]
    send_chat(page, text)
    message(ben, text).wait_for(timeout=5000)
    assert wait_for(lambda: names["ben"] in (message(page, text).locator(".pk-seen").all_inner_texts() or [""])[0], timeout=5), \
        "Ben's receipt under the message"
    page.evaluate("""() => {
        window.__bursts = [];
        const stages = [...document.querySelectorAll('*')].filter((h) => h.shadowRoot).flatMap((h) => [...h.shadowRoot.querySelectorAll('.pk-bursts')]);
        const observer = new MutationObserver((records) => {
            for (const r of records) for (const n of r.addedNodes) window.__bursts.push(getComputedStyle(n).animationName);
        });
        for (const stage of stages) observer.observe(stage, { childList: true });
    }""")
    cy.locator("textarea.pk-input").click()
    cy.keyboard.type("typing away", delay=20)
    ben.locator("button.pk-react").first.click()
    page.locator(".pk-chat .pk-typing").filter(has_text="typing").wait_for(timeout=3000)
    assert wait_for(lambda: page.evaluate("window.__bursts.length") > 0, timeout=3), "Ben's reaction burst"
    # a screen reader hears who types once (typing indicator and chat panel show the same room), and who reacted
    assert wait_for(lambda: spoken(page, "is typing") == 1, timeout=3), spoken(page, "is typing")
    assert wait_for(lambda: spoken(page, "reacted") == 1, timeout=3)
    return page.evaluate("window.__bursts")


def spoken(page, words: str) -> int:
    """How many of the page's live regions say `words` now."""
    return page.locator(".pk-sr[role=status]").filter(has_text=words).count()


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    results = page.evaluate(f"""async () => {{
        const include = ({KIT_ELEMENTS})();
        const result = await axe.run({{ include }}, {{ resultTypes: ['violations'] }});
        return {{ scanned: include.length, violations: result.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${{v.id}} (${{v.impact}}): ${{v.help}} at ${{v.nodes.slice(0, 3).map((n) => JSON.stringify(n.target) + ' ' + n.failureSummary).join('; ')}}`) }};
    }}""")
    assert results["scanned"] >= 8, results
    return results["violations"]


@pytest.mark.parametrize("theme", ["light", "dark", "custom"])
def test_axe_finds_no_serious_violation_in_what_the_kit_draws(theme, browser, server, custom_server, ana, others, names) -> None:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci` in tests/ (.ci/run does)")
    context = None
    if theme == "light":
        page = ana
    else:
        # the custom page also asks for reduced motion: the bursts fade in place
        context = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme="dark",
                                      reduced_motion="reduce" if theme == "custom" else "no-preference")
        page = open_tab(context, custom_server if theme == "custom" else server, names["dee" if theme == "dark" else "eve"])
    try:
        background = page.evaluate("getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        expected = {"light": "rgb(255, 255, 255)", "custom": "rgb(253, 246, 227)"}
        if theme in expected:
            assert background == expected[theme], background
        else:
            assert background not in expected.values(), background
        animations = on_screen(page, others, names, f"hello in the {theme} theme")
        assert set(animations) == {"pk-fade" if theme == "custom" else "pk-rise"}, animations
        assert serious_violations(page) == []
    finally:
        if context is not None:
            context.close()


def tab_to(page, selector: str, *, presses: int = 150) -> None:
    """Press Tab until the focused element matches `selector`; it must show its focus."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"(selector) => {{ const a = {DEEP_ACTIVE}; return !!a && a.matches(selector); }}", selector):
            outline = page.evaluate(f"() => {{ const s = getComputedStyle({DEEP_ACTIVE}); return [s.outlineStyle, s.outlineWidth]; }}")
            assert outline[0] != "none" and outline[1] != "0px", f"{selector} has no visible focus: {outline}"
            return
    raise AssertionError(f"{presses} presses of Tab never reached {selector}")


def test_every_control_works_from_the_keyboard_alone(ana, others, names) -> None:
    ben, ben_id = others["ben"], user_id_for(names["ben"])
    ben.evaluate("window.__reactions = 0; window.__presenceKit.subscribe(() => { window.__reactions += 1; }, ['reaction']); true")
    ben.locator(".st-key-title input").click()  # Ben edits the title: he can be located and followed
    member(ana, ben_id).locator(".pk-located").wait_for(timeout=5000)
    ana.locator("h1").click()  # start from the top of the page

    tab_to(ana, "button.pk-react")
    ana.keyboard.press("Enter")
    assert wait_for(lambda: ben.evaluate("window.__reactions") >= 1, timeout=3), "the reaction reached Ben"

    tab_to(ana, "button.pk-follow")
    ana.keyboard.press("Space")
    ben.locator(".pk-followers").filter(has_text="follows you").wait_for(timeout=3000)
    assert ana.locator(f'.pk-field-person[data-user="{ben_id}"] .pk-follow').get_attribute("aria-pressed") == "true"
    ana.keyboard.press("Enter")  # and stop again
    assert wait_for(lambda: ana.locator(".pk-follow").first.get_attribute("aria-pressed") == "false", timeout=3)

    tab_to(ana, "button.pk-more")  # "Show all" of the lobby's counter
    ana.keyboard.press("Enter")
    ana.locator(".st-key-presence-kit-id-lobby-counter li.pk-member").first.wait_for(timeout=3000)

    tab_to(ana, f'li[data-user="{ben_id}"] .pk-located')  # where Ben edits: shows the field
    ana.keyboard.press("Enter")
    assert wait_for(lambda: ana.locator(".st-key-title").get_attribute("data-pk-highlight") == ben_id, timeout=3)

    tab_to(ana, "textarea.pk-input")
    ana.keyboard.type("typed without a mouse")
    ana.keyboard.press("Enter")
    message(ben, "typed without a mouse").wait_for(timeout=5000)
    ben.locator("h1").click()  # Ben leaves the title


def test_a_page_restored_from_the_back_forward_cache_is_live_again(ana, others, names, server) -> None:
    ben = others["ben"]
    ana.evaluate("window.__sameDocument = true")
    ana.goto(f"{server.url}/presence-kit/health")
    ana.go_back(wait_until="commit")
    assert wait_for(lambda: ana.evaluate("window.__sameDocument === true"), timeout=5), "the page did not come from the cache"
    assert wait_for(lambda: ana.evaluate("window.__presenceKit.connected"), timeout=5), "the restored page did not reconnect"
    send_chat(ben, "are you back?")
    message(ana, "are you back?").wait_for(timeout=5000)
    assert wait_for(lambda: spoken(ana, names["ben"]) >= 1, timeout=5), "a new message is announced (alone or in a summary)"
    assert member(ben, user_id_for(names["ana"])).get_attribute("data-status") == "online"
