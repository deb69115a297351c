// Who is editing which input of the page, soft locks and follow mode. Streamlit renders
// every keyed widget in an element container with the class `st-key-KEY`: that
// container is the field. When this tab's person focuses a field (one of `fields`, or
// any keyed input) the tab says so, with `lock` a claim on its soft lock; the server
// sends who edits what in the room (`fields`), each field's lock holder marked by the
// one rule every server applies (components/fields.py). Every field someone else edits
// gets an outline in their cursor colour, a label ("Ana", "Ana +1"; "Ana is editing"
// with a lock) and `data-editors` with their user ids; a field another device holds is
// read-only here until it is released. Those elements are Streamlit's, outside this
// component's shadow root, so what is drawn on them is inline and put back whenever
// Streamlit redraws them; the label is decoration (aria-hidden), a locked input says who
// holds it in its accessible description. The widget itself lists who edits what ("Ana
// · Title": a button that scrolls there), and with `follow` lets you follow someone
// (toggle buttons); following and being followed are said in a polite status line.
const OWN_KEYS = "presence-kit-"; // the kit's own widgets are not fields
const FIELD_ID = /^[A-Za-z0-9_-]{1,64}$/;
const FLASH_MS = 1600;
const PASSING_KEYS = new Set(["Tab", "Shift", "Escape"]); // leaving a locked field is fine
const GUARDED = ["keydown", "pointerdown", "mousedown", "click", "dblclick", "paste", "drop"];

export default (component) => mountWidget(component, "fieldPresence", {
  className: "pk-fields",
  kinds: ["fields", "room", "welcome", "connection", "locate"],
  need: (w) => ({ rooms: { [w.options.room]: ["fields"] } }),
  build(w) { w.state = build(w.kit, w.root, w.options, w.key); },
  update(w, previous) {
    const { state, kit, options } = w;
    state.options = options;
    if ((previous.room !== options.room || !options.follow) && state.following) follow(state, kit, null);
    render(state, kit);
  },
  receive(w, message) { receive(w.state, w.kit, message); },
  destroy(w) { teardown(w.state, w.kit); },
});

function build(kit, root, options, key) {
  const status = el("div", "pk-fields-status");
  status.setAttribute("role", "status");
  const list = el("ul", "pk-fields-list");
  list.setAttribute("aria-label", text("who_edits_what"));
  const followers = el("div", "pk-followers");
  const followersText = el("span", "pk-followers-text");
  const followable = el("button", "pk-followable");
  followable.type = "button";
  followable.className = "pk-followable pk-button";
  followers.append(followersText, " ", followable);
  root.append(status, list, followers);
  const shared = (kit.fieldFocus ||= { owner: null, text: "" }); // one focus per tab, whichever widget saw it
  const state = {
    kit, key, options, root, status, list, followers, followersText, followable, shared,
    items: new Map(), painted: new Set(), following: null, followedField: null, note: "",
    followableOn: localStorage.getItem(followableKey(kit)) !== "0", flashTimer: null, focusTimer: null, frame: 0,
  };
  followable.addEventListener("click", () => {
    state.followableOn = !state.followableOn;
    localStorage.setItem(followableKey(kit), state.followableOn ? "1" : "0");
    kit.send({ t: "followable", followable: state.followableOn });
    render(state, kit);
  });
  state.onFocusIn = (event) => {
    const found = fieldOf(event.target, state.options);
    if (found) say(state, kit, found);
  };
  state.onFocusOut = () => { // where did focus go?
    clearTimeout(state.focusTimer);
    state.focusTimer = setTimeout(() => {
      const active = document.activeElement;
      if (active && active.closest && active.closest("#portal")) return; // a field's own popup (a data editor's cell editor)
      const found = fieldOf(active, state.options);
      if (found) say(state, kit, found);
      else if (shared.owner === key) say(state, kit, null);
    }, 0);
  };
  state.onGuard = (event) => guard(state, event);
  document.addEventListener("focusin", state.onFocusIn, true);
  document.addEventListener("focusout", state.onFocusOut, true);
  for (const type of GUARDED) window.addEventListener(type, state.onGuard, true);
  // Streamlit redraws its elements on reruns: paint them again (one pass a frame)
  state.observer = new MutationObserver(() => {
    if (!state.frame) state.frame = requestAnimationFrame(() => { state.frame = 0; paint(state, kit); });
  });
  state.observer.observe(document.body, { childList: true, subtree: true });
  return state;
}

function followableKey(kit) {
  return `presence-kit:${kit.config.org}:${kit.config.user}:followable`;
}

function receive(state, kit, message) {
  if (message.t === "connection" && message.connected) { // a new socket: say again where we are
    // (a reload that kept the device: nothing focused here means nothing edited)
    if (state.shared.owner === state.key) kit.send(JSON.parse(state.shared.text));
    else if (!state.shared.owner) kit.send({ t: "blur" });
    if (!state.followableOn) kit.send({ t: "followable", followable: false });
    if (state.following) kit.send({ t: "follow", room: state.options.room, user: state.following });
    return;
  }
  if (message.t === "locate") { reveal(state, kit, message.user, message.location); return; }
  if ((message.t === "fields" || message.t === "room") && message.room !== state.options.room) return;
  render(state, kit);
}

// -- this tab's focus ---------------------------------------------------------------------
function fieldOf(node, options) {
  const container = node && node.closest ? node.closest('[data-testid="stElementContainer"]') : null;
  if (!container) return null;
  const name = [...container.classList].find((c) => c.startsWith("st-key-"));
  const field = name ? name.slice("st-key-".length) : "";
  if (!FIELD_ID.test(field) || field.startsWith(OWN_KEYS) || (options.fields && !options.fields.includes(field))) return null;
  return { field, container };
}

function labelOf(container) {
  const label = container.querySelector('[data-testid="stWidgetLabel"]');
  const input = container.querySelector("input, textarea");
  const words = (label && label.textContent.trim()) || (input && input.getAttribute("aria-label")) || "";
  return words.slice(0, 200);
}

function say(state, kit, found) {
  const { shared, options } = state;
  const label = found && labelOf(found.container);
  const message = found
    ? { t: "focus", room: options.room, field: found.field, ...(label ? { label } : {}), lock: !!options.lock }
    : { t: "blur" };
  shared.owner = found ? state.key : null;
  const json = JSON.stringify(message);
  if (json === shared.text) return;
  shared.text = json; // sent again on reconnect if it cannot go now
  kit.send(message);
}

// -- what the others do --------------------------------------------------------------------
function render(state, kit) {
  const me = kit.you || { user: null, device: null };
  const entries = kit.room(state.options.room).fields || [];
  const mine = (e) => e.user === me.user && e.device === me.device;
  const byField = new Map();
  for (const e of entries) {
    if (e.field && !mine(e)) byField.set(e.field, [...(byField.get(e.field) || []), e]);
  }
  const holders = new Map(entries.filter((e) => e.field && e.holds).map((e) => [e.field, e]));
  state.view = { me, entries, byField, holders, mine };
  paint(state, kit);
  renderList(state, kit);
  keepFollowing(state, kit);
}

function pageFields(options) {
  const found = new Map();
  for (const node of document.querySelectorAll('[data-testid="stElementContainer"][class*="st-key-"]')) {
    const field = fieldOf(node, options);
    if (field && field.container === node) found.set(field.field, node);
  }
  return found;
}

function paint(state, kit) {
  if (!state.view) return;
  const { byField, holders, mine } = state.view;
  const now = new Set();
  for (const [field, container] of pageFields(state.options)) {
    const editors = byField.get(field) || [];
    const holder = state.options.lock ? holders.get(field) : null;
    const lockedBy = holder && !mine(holder) ? holder : null;
    if (!editors.length && !lockedBy) continue;
    now.add(container);
    decorate(kit, container, editors, lockedBy);
  }
  for (const container of state.painted) if (!now.has(container)) undecorate(container);
  state.painted = now;
}

function decorate(kit, container, editors, lockedBy) {
  const users = [...new Set(editors.map((e) => e.user))];
  const lead = lockedBy || editors[0];
  const colour = colourFor(lead.user);
  setAttr(container, "data-editors", users.length ? users.join(" ") : null);
  setAttr(container, "data-locked-by", lockedBy ? lockedBy.user : null);
  Object.assign(container.style, { outline: `2px solid ${colour}`, outlineOffset: "3px", borderRadius: "0.5rem", position: "relative" });
  let label = container.querySelector(":scope > .pk-field-label");
  if (!label) {
    label = el("div", "pk-field-label");
    label.setAttribute("aria-hidden", "true"); // the widget's list says it; a locked input says who holds it
    Object.assign(label.style, { // outside the shadow root: no stylesheet of ours reaches it
      // inside the top right corner: a text area's container clips what sticks out
      position: "absolute", top: "0", right: "0", zIndex: "5", pointerEvents: "none", color: "white",
      font: "12px/1.5 var(--st-font, sans-serif)", padding: "0 6px", borderRadius: "8px", whiteSpace: "nowrap", unicodeBidi: "isolate",
    });
    container.appendChild(label);
  }
  const others = users.filter((user) => user !== lead.user).length;
  const words = lockedBy ? text("is_editing") : others ? text("more", { count: others }) : "";
  const key = `${lead.user}\u0000${kit.label(lead.user, lead.name).name}\u0000${words}`;
  if (label.dataset.key !== key) { // rebuilt only when it changes (each rebuild is a DOM mutation)
    label.dataset.key = key;
    label.replaceChildren(nameElement(kit, lead.user, lead.name), words);
  }
  label.style.background = colour;
  for (const input of container.querySelectorAll("input, textarea")) {
    if (lockedBy) {
      if (!input.readOnly) {
        input.readOnly = true;
        input.dataset.pkLocked = "1";
        input.setAttribute("aria-readonly", "true");
      }
      if (input.dataset.pkLocked) setAttr(input, "aria-description", text("edited_by", { name: kit.nameOf(lockedBy.user, lockedBy.name) }));
    } else if (!lockedBy && input.dataset.pkLocked) {
      unlock(input);
    }
  }
  container.style.cursor = lockedBy ? "not-allowed" : "";
}

function undecorate(container) {
  setAttr(container, "data-editors", null);
  setAttr(container, "data-locked-by", null);
  Object.assign(container.style, { outline: "", outlineOffset: "", borderRadius: "", position: "", cursor: "" });
  const label = container.querySelector(":scope > .pk-field-label");
  if (label) label.remove();
  for (const input of container.querySelectorAll("[data-pk-locked]")) unlock(input);
}

function unlock(input) {
  input.readOnly = false;
  delete input.dataset.pkLocked;
  input.removeAttribute("aria-readonly");
  input.removeAttribute("aria-description");
}

// A locked field takes focus (so its holder's release reaches whoever waits in it) but
// no input: keys, clicks on its controls (a select's button, a number's steps, a data
// editor's cells), pastes and drops stop here before Streamlit sees them.
function guard(state, event) {
  const found = fieldOf(event.target, state.options);
  if (!found || !state.painted.has(found.container) || !found.container.hasAttribute("data-locked-by")) return;
  if (event.type === "keydown" && PASSING_KEYS.has(event.key)) return;
  if ((event.type === "pointerdown" || event.type === "mousedown") && event.target.matches("input, textarea")) return;
  event.preventDefault();
  event.stopPropagation();
}

// -- where everyone is, and follow mode ------------------------------------------------------
function renderList(state, kit) {
  const { entries, me } = state.view;
  const shown = new Map(); // user -> their first entry with a field (the rule's order)
  for (const e of entries) if (e.field && e.user !== me.user && !shown.has(e.user)) shown.set(e.user, e);
  let previous = null;
  for (const [user, entry] of shown) {
    let item = state.items.get(user);
    if (!item) state.items.set(user, (item = listItem(state, kit, user)));
    const where = entry.label || entry.field;
    const whereKey = `${kit.label(user, entry.name).name}\u0000${where}\u0000${entry.holds && state.options.lock}`;
    if (item.whereKey !== whereKey) { // rebuilt only when it changes
      item.whereKey = whereKey;
      item.where.replaceChildren(nameElement(kit, user, entry.name), text(entry.holds && state.options.lock ? "where_locked" : "where", { field: where }));
      item.where.title = text("show_where", { name: kit.label(user, entry.name).name });
    }
    setHidden(item.follow, !state.options.follow || !!entry.unfollowable);
    setText(item.follow, state.following === user ? text("stop_following") : text("follow"));
    setAttr(item.follow, "aria-pressed", String(state.following === user));
    const next = previous ? previous.nextSibling : state.list.firstChild;
    if (next !== item.li) state.list.insertBefore(item.li, next);
    previous = item.li;
  }
  for (const [user, item] of state.items) if (!shown.has(user)) { item.li.remove(); state.items.delete(user); }
  setHidden(state.list, shown.size === 0);

  const followers = [...new Set(entries.filter((e) => e.follows === me.user && e.user !== me.user).map((e) => e.user))];
  setHidden(state.followers, !state.options.follow || (!followers.length && state.followableOn));
  setText(state.followersText, !state.followableOn ? text("nobody_follows") :
    followers.length === 1 ? text("follows_you", { name: kit.nameOf(followers[0]) }) : text("followers", { count: followers.length }));
  setText(state.followable, state.followableOn ? text("following_off") : text("following_on"));
  setText(state.status, state.note || (state.following ? text("following", { name: kit.nameOf(state.following) }) : ""));
  setHidden(state.status, !state.status.textContent);
}

function listItem(state, kit, user) {
  const li = el("li", "pk-field-person");
  li.dataset.user = user;
  const where = el("button", "pk-where");
  where.type = "button";
  where.addEventListener("click", () => reveal(state, kit, user, null));
  const followButton = el("button", "pk-follow pk-button");
  followButton.type = "button";
  followButton.addEventListener("click", () => follow(state, kit, state.following === user ? null : user));
  li.append(where, followButton);
  return { li, where, follow: followButton };
}

function follow(state, kit, user) {
  state.following = user;
  state.followedField = null;
  state.note = "";
  kit.send(user ? { t: "follow", room: state.options.room, user } : { t: "follow", room: state.options.room });
  if (state.view) { renderList(state, kit); keepFollowing(state, kit); }
}

function keepFollowing(state, kit) {
  const user = state.following;
  if (!user) return;
  const theirs = state.view.entries.filter((e) => e.user === user);
  if (theirs.some((e) => e.unfollowable)) {
    follow(state, kit, null);
    state.note = text("turned_following_off", { name: kit.nameOf(user) });
    renderList(state, kit);
    return;
  }
  const editing = theirs.find((e) => e.field);
  if (editing && editing.field !== state.followedField) {
    state.followedField = editing.field;
    reveal(state, kit, user, { room: state.options.room, field: editing.field });
  }
}

// Scroll to the field `user` edits (or `location`, a presence list's) and highlight it.
function reveal(state, kit, user, location) {
  if (location && location.room !== state.options.room) return;
  const entry = state.view && state.view.entries.find((e) => e.user === user && e.field);
  const field = location ? location.field : entry && entry.field;
  const container = field && pageFields(state.options).get(field);
  if (!container) return;
  container.scrollIntoView({ block: "center", behavior: reducedMotion() ? "auto" : "smooth" });
  container.dataset.pkHighlight = user;
  container.style.boxShadow = `0 0 0 6px ${colourFor(user).replace(")", " / 0.35)")}`;
  clearTimeout(state.flashTimer);
  state.flashTimer = setTimeout(() => { delete container.dataset.pkHighlight; container.style.boxShadow = ""; }, FLASH_MS);
}

function teardown(state, kit) {
  state.observer.disconnect();
  cancelAnimationFrame(state.frame);
  clearTimeout(state.focusTimer);
  clearTimeout(state.flashTimer);
  document.removeEventListener("focusin", state.onFocusIn, true);
  document.removeEventListener("focusout", state.onFocusOut, true);
  for (const type of GUARDED) window.removeEventListener(type, state.onGuard, true);
  for (const container of state.painted) undecorate(container);
  if (state.shared.owner === state.key) say(state, kit, null);
  if (state.following) kit.send({ t: "follow", room: state.options.room });
}
