"""The widgets' shared browser code (components/widgets/client.js) run in Node, without a
browser or a server: the words and languages (Node has the browser's Intl APIs with
full ICU), the typing refresh period, the rate-limited live regions and the shared
"Seen by" and typing renderers. A fake clock drives the timers; a fake element counts
its writes, so "nothing changed, nothing written" is checked too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.widget_texts import languages_script

WIDGETS = Path(__file__).resolve().parent.parent / "components" / "widgets"

HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
let now = 0;
const timers = [];
class FakeNode {
  constructor(tag) { this.tagName = tag; this.children = []; this.attributes = new Map(); this.dataset = {}; this.hidden = false; this.className = ""; this.style = {}; this.writes = 0; this._text = ""; }
  get textContent() { return this._text; }
  set textContent(value) { this._text = String(value); this.writes += 1; }
  setAttribute(name, value) { this.attributes.set(name, String(value)); this.writes += 1; }
  getAttribute(name) { return this.attributes.has(name) ? this.attributes.get(name) : null; }
  hasAttribute(name) { return this.attributes.has(name); }
  removeAttribute(name) { this.attributes.delete(name); this.writes += 1; }
  appendChild(child) { this.children.push(child); return child; }
  append(...children) { this.children.push(...children); }
}
const context = {
  console, JSON, Math, Date, Map, Set, String, Object, Array,
  Intl, performance: { now: () => now },
  setTimeout: (fn, ms) => { timers.push({ at: now + ms, fn }); return timers.length; },
  clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].fn = null; },
  document: { createElement: (tag) => new FakeNode(tag) },
};
vm.createContext(context);
const source = fs.readFileSync(process.argv[1], "utf8");
vm.runInContext(source + "\n;globalThis.__api = {text, LANGUAGES, language, pageLocale, ago, typingRefreshMs, typingText, announcer, renderSeen, renderTyping};", context);
const api = context.__api;
// the page's language, as kit.configure sets it
const speak = (locale, labels) => { context.window = { __presenceKit: { language: api.language(locale, labels) } }; };
const advance = (ms) => {
  now += ms;
  for (const timer of timers) if (timer.fn && timer.at <= now) { const fn = timer.fn; timer.fn = null; fn(); }
};
const out = {};
out.keys = Object.keys(api.LANGUAGES.en);
out.locales = [
  [null, ["de-AT", "en-US"]], [null, ["ja", "pt-BR", "fr"]], [null, ["ja"]], [null, []], ["fr", ["en-GB", "fr-CA"]], ["es", ["de"]],
].map(([wanted, preferred]) => api.pageLocale(wanted, preferred));

// German, with the browser's plural rules, lists and relative times; then a label of the app's own
speak("de", null);
const names = ["\u2068Ana\u2069", "\u2068Ben\u2069"];
now = Date.now();
out.german = {
  typingOne: api.typingText(names.slice(0, 1)), typingTwo: api.typingText(names), typingMany: api.typingText(["a", "b", "c", "d"]),
  seenBy: api.text("seen_by", { names: [...names, "\u2068Cy\u2069"] }), seenOne: api.text("seen_by_count", { count: 1 }),
  seenMany: api.text("seen_by_count", { count: 1234 }), lastSeen: api.text("last_seen", { ago: api.ago(Date.now() / 1000 - 300) }),
  yesterday: api.ago(Date.now() / 1000 - 86400 - 60), justNow: api.ago(Date.now() / 1000 - 5),
  composer: api.text("composer", { room: "lobby" }),
};
speak("de", { seen_by: "Gelesen: {names}", devices: "{count} Tabs", typing_many: { one: "eine Person tippt", other: "{count} tippen" }, send: "<b>{x}</b>" });
out.labelled = {
  seenBy: api.text("seen_by", { names }), devices: api.text("devices", { count: 1 }), typingMany: api.typingText(["a", "b", "c"]),
  send: api.text("send"), composer: api.text("composer", { room: "lobby" }),
};
speak("fr", null);
out.french = { typingTwo: api.typingText(names), seenMany: api.text("seen_by_count", { count: 2 }), zero: api.text("seen_by_count", { count: 0 }) };
context.window = undefined;
out.refresh = [1, 2, 4, 6, 120].map(api.typingRefreshMs);

// an announcer of chat (a 3 s gap): the first item at once, the rest as one summary a gap later
const cleanups = [];
const page = { spoken: new Map() };
const widget = () => ({ root: new FakeNode("div"), kit: page, options: { room: "lobby" }, onDestroy: (fn) => cleanups.push(fn) });
const w = widget();
const say = api.announcer(w, "chat", (items) => items.join("+"));
const region = w.root.children[0];
out.role = region.getAttribute("role");
const heard = [];
const listen = () => { if (heard[heard.length - 1] !== region.textContent) heard.push(region.textContent); };
say("a"); listen();
advance(500); say("b"); say("c"); listen();
advance(1000); listen();
advance(1600); listen();
advance(5000); say("d"); listen();
out.heard = heard;
// another widget of the room saying the same words within the gap stays silent
const other = widget();
const echo = api.announcer(other, "chat", (items) => items.join("+"));
echo("d");
out.echo = other.root.children[0].textContent;
advance(3000);
echo("e");
out.later = other.root.children[0].textContent;

// "Seen by": names below and at the threshold, a count above it, nothing written again
const kit = {
  you: { user: "me" },
  nameOf: (user) => `\u2068${user.toUpperCase()}\u2069`,
  room: () => ({ typists: ["ana", "me", "ben"] }),
};
const line = new FakeNode("div");
api.renderSeen(kit, line, ["ana", "ben"], 2, false);
out.seenTwo = line.textContent;
const writes = line.writes;
api.renderSeen(kit, line, ["ana", "ben"], 2, false);
out.seenAgainWrites = line.writes - writes;
api.renderSeen(kit, line, ["ana", "ben", "cy"], 2, false);
out.seenThree = line.textContent;
api.renderSeen(kit, line, [], 2, true);
out.latestNone = line.textContent;

// the typing line: never yourself; announced when someone starts, not when nothing changed
const typing = new FakeNode("div");
const spoken = [];
api.renderTyping(kit, typing, "lobby", (words) => spoken.push(words));
const typingWrites = typing.writes;
api.renderTyping(kit, typing, "lobby", (words) => spoken.push(words));
out.typing = { text: typing.textContent, ids: typing.dataset.typists, spoken, againWrites: typing.writes - typingWrites };
process.stdout.write(JSON.stringify(out));
"""


# The kit's lifecycle on a fake page: event targets that count their listeners, a fake
# WebSocket the test opens and closes, session storage, microtasks.
LIFECYCLE = r"""
const vm = require("vm");
const fs = require("fs");
const live = { window: 0, document: 0 };
const handlers = { window: new Map(), document: new Map() };
const target = (name) => ({
  addEventListener(type, fn) { live[name] += 1; handlers[name].set(type, [...(handlers[name].get(type) || []), fn]); },
  removeEventListener(type, fn) { live[name] -= 1; handlers[name].set(type, (handlers[name].get(type) || []).filter((f) => f !== fn)); },
});
const fire = (name, type, event) => { for (const fn of handlers[name].get(type) || []) fn(event); };
const sockets = [];
class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; this.closed = null; this.readyState = 0; sockets.push(this); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code, reason) { this.closed = { code, reason }; this.readyState = 3; }
}
FakeSocket.OPEN = 1;
const storage = new Map();
const timers = [];
const context = {
  console, JSON, Math, Date, Map, Set, String, Object, Array, Promise, queueMicrotask, Intl,
  WebSocket: FakeSocket, navigator: { languages: ["en-US"] },
  location: { protocol: "http:", host: "127.0.0.1:1" },
  sessionStorage: { getItem: (k) => storage.get(k) || null, setItem: (k, v) => storage.set(k, v) },
  performance: { now: () => 0 },
  setTimeout: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
  clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].fn = null; },
  document: { ...target("document"), hidden: false, createElement: () => ({}) },
};
context.window = { ...target("window") };
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8") + "\n;globalThis.__presenceKitOf = presenceKit;", context);
(async () => {
  const out = {};
  const kit = context.__presenceKitOf();
  const asked = [];
  const config = (token) => ({ org: "o", user: "u", name: "U", token, wsPath: "/ws", awayAfter: 300 });
  kit.configure("a", config("t1"), () => asked.push("a"));
  kit.need("a", { presence: [{ room: null, limit: 50 }] });
  kit.configure("b", config("t2"), () => asked.push("b"));
  kit.need("b", { rooms: { lobby: ["typing"] } });
  kit.configure("a", config("t3")); // a rerun: a fresh token, no new callback
  out.callbacks = kit.tokenExpired.size;
  const first = sockets[0];
  first.readyState = 1;
  first.onopen();
  out.hello = first.sent[0].t;
  out.listenersWhileMounted = { ...live };

  // into the back/forward cache and back
  fire("window", "pagehide", {});
  out.closedAtPagehide = first.closed;
  first.onclose({ code: 1000, reason: "page closed" }); // arrives late, once restored
  fire("window", "pageshow", { persisted: true });
  out.socketsAfterRestore = sockets.length;
  const second = sockets[1];
  second.readyState = 1;
  second.onopen();
  out.connectedAfterRestore = kit.connected;

  // chat messages the server did not send: the reason in the page's words, else the server's
  const refusedChat = async (reason, language) => {
    kit.language = context.language(language, null);
    const answer = kit.sendChat("lobby", "hi");
    const nonce = second.sent[second.sent.length - 1].nonce;
    second.onmessage({ data: JSON.stringify({ t: "chat_ack", room: "lobby", nonce, error: "Not sent: as the server says it.", reason }) });
    return (await answer).error;
  };
  out.refusedChat = [await refusedChat("too_fast", "de"), await refusedChat("toString", "de"), await refusedChat("room", "en")];

  // the server refuses the tokens: Python is asked once for fresh ones
  second.readyState = 3;
  second.onclose({ code: 4401, reason: "" });
  out.asked = asked;

  // the last widget goes: so do the socket, the listeners and the kit
  kit.release("a");
  kit.release("b");
  out.beforeMicrotasks = { ...live };
  await Promise.resolve();
  await Promise.resolve();
  out.listenersAfterRelease = { ...live };
  out.kitGone = context.window.__presenceKit === undefined;
  out.callbacksAfterRelease = kit.tokenExpired.size;
  process.stdout.write(JSON.stringify(out));
})();
"""


def run_node(script: str, folder: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs)")
    source = folder / "client.js"  # as the widgets get it: the language tables first
    source.write_text(languages_script() + (WIDGETS / "client.js").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([node, "-e", script, str(source)], capture_output=True, text=True, timeout=30)
    if result.returncode:
        pytest.fail(f"the script failed in Node: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> dict:
    return run_node(HARNESS, tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory) -> dict:
    return run_node(LIFECYCLE, tmp_path_factory.mktemp("lifecycle"))


def widget_sources() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(WIDGETS.glob("*.js"))}


def test_every_word_a_widget_writes_is_in_the_one_table(client) -> None:
    used: set[str] = set()
    for name, source in widget_sources().items():
        keys = {key for first in re.findall(r"\btext\(([^{)]*)", source) for key in re.findall(r"\"(\w+)\"", first)}
        used |= keys
        assert keys <= set(client["keys"]), f"{name} uses words missing from TEXTS: {keys - set(client['keys'])}"
        # literal words handed straight to an element would escape the table
        assert not re.findall(r"\bel\(\"[^\"]*\", \"[^\"]*\", \"[A-Za-z]", source), name
        assert not re.findall(r"textContent = \"[A-Za-z]", source), name
    # by close code, text(`refused_${code}`), and by the reason a chat message was not sent
    dynamic = {key for key in client["keys"] if key.startswith(("refused_", "not_sent_"))}
    assert set(client["keys"]) - dynamic <= used, f"words nobody shows: {set(client['keys']) - dynamic - used}"


def test_typing_is_refreshed_within_half_its_ttl(client) -> None:
    # a 1 s ttl (the schema's minimum) must be refreshed before it lapses at receivers
    assert client["refresh"] == [500, 1000, 2000, 2000, 2000]


def test_a_live_region_speaks_at_once_then_one_summary_per_gap_and_once_per_page(client) -> None:
    assert client["role"] == "status"
    assert client["heard"] == ["a", "b+c", "d"]
    assert client["echo"] == "", "a chat panel and a typing indicator of one room do not both say it"
    assert client["later"] == "e"


def test_seen_by_collapses_above_the_threshold_and_writes_only_changes(client) -> None:
    assert client["seenTwo"] == "Seen by \u2068ANA\u2069 and \u2068BEN\u2069"  # Intl.ListFormat
    assert client["seenAgainWrites"] == 0
    assert client["seenThree"] == "Seen by 3 people"
    assert client["latestNone"] == "Latest message: not seen yet"


def test_the_typing_line_leaves_yourself_out_and_announces_newcomers_once(client) -> None:
    typing = client["typing"]
    assert typing["ids"] == "ana ben"
    assert typing["text"] == "\u2068ANA\u2069 and \u2068BEN\u2069 are typing…"
    assert typing["spoken"] == [typing["text"]]
    assert typing["againWrites"] == 0


def test_the_token_expiry_callback_comes_with_the_mount_and_goes_with_it(lifecycle) -> None:
    assert lifecycle["callbacks"] == 2, "a rerun does not add or replace a widget's callback"
    assert lifecycle["asked"] == ["a"], "one rerun renders every widget: Python is asked once"
    assert lifecycle["callbacksAfterRelease"] == 0


def test_a_page_restored_from_the_back_forward_cache_connects_again(lifecycle) -> None:
    assert lifecycle["hello"] == "hello"
    assert lifecycle["closedAtPagehide"] == {"code": 1000, "reason": "page closed"}
    assert lifecycle["socketsAfterRestore"] == 2, "the late close of the old socket is not final"
    assert lifecycle["connectedAfterRestore"] is True


def test_a_chat_message_the_server_did_not_send_says_why_in_the_pages_language(lifecycle) -> None:
    assert lifecycle["refusedChat"] == [
        "Nicht gesendet: zu viele Nachrichten auf einmal. Warte einen Moment und sende sie erneut.",
        "Not sent: as the server says it.",  # a reason the page has no words for
        "Not sent: this page may not write in that room.",
    ]


def test_the_last_widget_takes_the_socket_and_the_page_listeners_with_it(lifecycle) -> None:
    assert lifecycle["listenersWhileMounted"]["window"] > 0 and lifecycle["listenersWhileMounted"]["document"] > 0
    assert lifecycle["beforeMicrotasks"] == lifecycle["listenersWhileMounted"], "a widget mounted in the same pass keeps them"
    assert lifecycle["listenersAfterRelease"] == {"window": 0, "document": 0}
    assert lifecycle["kitGone"] is True


def test_the_page_speaks_the_app_files_locale_else_the_browsers_else_english(client) -> None:
    # the browser's own tag when it is the chosen language (regional formats), else the base
    assert client["locales"] == ["de-AT", "pt-BR", "en", "en", "fr-CA", "es"]


def test_german_words_plurals_lists_and_relative_times_come_from_intl(client) -> None:
    german = client["german"]
    assert german["typingOne"] == "\u2068Ana\u2069 schreibt…"
    assert german["typingTwo"] == "\u2068Ana\u2069 und \u2068Ben\u2069 schreiben…"
    assert german["typingMany"] == "4 Personen schreiben…"
    assert german["seenBy"] == "Gesehen von \u2068Ana\u2069, \u2068Ben\u2069 und \u2068Cy\u2069"
    assert german["seenOne"] == "Gesehen von 1 Person"
    assert german["seenMany"] == "Gesehen von 1.234 Personen"  # Intl.NumberFormat's German grouping
    assert german["lastSeen"] == "offline · zuletzt gesehen vor 5 Minuten"
    assert german["yesterday"] == "gestern"
    assert german["justNow"] == "gerade eben"
    assert german["composer"] == "Nachricht an #lobby"


def test_labels_replace_single_texts_as_plain_text(client) -> None:
    labelled = client["labelled"]
    assert labelled["seenBy"] == "Gelesen: \u2068Ana\u2069 und \u2068Ben\u2069"
    assert labelled["devices"] == "1 Tabs"  # one text for every count
    assert labelled["typingMany"] == "3 tippen"  # plural forms of the app's own
    assert labelled["send"] == "<b>{x}</b>"  # no markup, and an unknown placeholder stays as written
    assert labelled["composer"] == "Nachricht an #lobby"  # the rest stays German


def test_french_plural_rules_differ_from_english(client) -> None:
    french = client["french"]
    assert french["typingTwo"] == "\u2068Ana\u2069 et \u2068Ben\u2069 sont en train d'écrire…"
    assert french["seenMany"] == "Vu par 2 personnes"
    assert french["zero"] == "Vu par 0 personne"  # French says 0 in the singular; English would not
