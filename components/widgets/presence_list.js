// The presence list: who is in the org (or one room), live. The server sends the list's
// first page of members in display order (online, away, then offline most recently
// seen first) and counts by status; "Show more" asks for the next page. Each member
// element has data-user and data-status. Above `counter_above` live members it becomes
// a counter (and a "Show all" button), and goes back to a list only below
// counter_above - counter_hysteresis. Entries are updated in place, keyed by user: an
// avatar image is loaded once, not on every change. A member editing a field says
// where ("editing Title"); clicking them asks the page to show it (kit.locate).
const ORDER = { online: 0, away: 1, offline: 2 };
const KINDS = ["people", "people_delta", "connection", "broker", "welcome", "refused"];

export default (component) => mountWidget(component, "presenceList", (kit, parentElement, options, key) => {
  const root = el("div", "pk-presence");
  const title = el("div", "pk-title");
  const banner = el("div", "pk-banner");
  const counter = el("div", "pk-counter");
  const online = el("span", "pk-count pk-online");
  const away = el("span", "pk-count pk-away");
  counter.append(online, away);
  const list = el("ul", "pk-members");
  const more = el("button", "pk-more");
  more.type = "button";
  root.append(title, banner, counter, list, more);
  parentElement.appendChild(root);
  const state = { title, banner, counter, online, away, list, more, items: new Map(), counterMode: false, expanded: false, limit: PAGE, options };
  more.addEventListener("click", () => {
    if (state.counterMode && !state.expanded) state.expanded = true;
    else state.limit = Math.min(state.limit + PAGE, 500);
    ask(state, kit, key);
    render(state, kit);
  });
  const unsubscribe = kit.subscribe(() => render(state, kit), KINDS);
  const clock = setInterval(() => render(state, kit), 30000); // "away · 5 min" ages
  return {
    update(options) {
      const moved = state.options.room !== options.room;
      state.options = options;
      if (moved) { state.limit = PAGE; state.expanded = false; }
      ask(state, kit, key);
      render(state, kit);
    },
    destroy() { unsubscribe(); clearInterval(clock); root.remove(); },
  };
});

function ask(state, kit, key) {
  kit.need(key, { presence: [{ room: state.options.room || null, limit: state.limit }] });
}

function render(state, kit) {
  const { options } = state;
  const view = kit.view(options.room || null);
  const live = view.counts.online + view.counts.away;
  if (!state.counterMode && live > options.counter_above) state.counterMode = true;
  else if (state.counterMode && live < options.counter_above - options.counter_hysteresis) { state.counterMode = false; state.expanded = false; }

  state.title.textContent = options.title || "";
  state.title.hidden = !options.title;
  const problem = kit.problem || (!kit.connected ? "Connecting…" : kit.broker && !kit.broker.connected ? "Reconnecting to the broker…" : "");
  state.banner.textContent = problem;
  state.banner.hidden = !problem;
  state.counter.hidden = !state.counterMode;
  state.counter.dataset.online = view.counts.online;
  state.counter.dataset.away = view.counts.away;
  state.online.textContent = `${view.counts.online} online`;
  state.away.textContent = `${view.counts.away} away`;
  const listed = !state.counterMode || state.expanded;
  state.list.hidden = !listed;
  state.more.hidden = listed && view.total <= view.members.size;
  state.more.textContent = listed ? `Show more (${view.total - view.members.size})` : "Show all";

  const you = kit.you ? kit.you.user : null;
  const members = listed ? [...view.members.values()] : [];
  members.sort((a, b) =>
    (b.user === you) - (a.user === you) ||
    ORDER[a.status] - ORDER[b.status] ||
    (a.status === "offline" ? (b.since || 0) - (a.since || 0) : displayName(a).localeCompare(displayName(b))));
  const shown = new Set();
  let previous = null;
  for (const user of members) {
    shown.add(user.user);
    let item = state.items.get(user.user);
    if (!item) state.items.set(user.user, (item = memberItem(user.user)));
    updateMember(item, user, user.user === you, options, kit);
    const next = previous ? previous.nextSibling : state.list.firstChild;
    if (next !== item.li) state.list.insertBefore(item.li, next);
    previous = item.li;
  }
  for (const [user, item] of state.items) {
    if (!shown.has(user)) { item.li.remove(); state.items.delete(user); }
  }
}

function memberItem(userId) {
  const li = el("li", "pk-member");
  li.dataset.user = userId;
  const avatar = el("span", "pk-avatar");
  const initialsNode = el("span", "pk-initials");
  const dot = el("span", "pk-dot");
  avatar.append(initialsNode, dot);
  const text = el("span", "pk-text");
  const name = el("span", "pk-name");
  const you = el("span", "pk-you", " (you)");
  const detail = el("span", "pk-detail");
  text.append(name, you, detail);
  li.append(avatar, text);
  return { li, avatar, initialsNode, img: null, text, name, you, detail, labelKey: "" };
}

function updateMember(item, user, isYou, options, kit) {
  item.li.className = `pk-member pk-${user.status}`;
  item.li.dataset.status = user.status;
  const label = kit.label(user.user);
  const labelKey = `${label.name}\u0000${label.id || ""}`;
  if (labelKey !== item.labelKey) {
    item.labelKey = labelKey;
    item.name.replaceChildren(nameElement(kit, user.user));
    item.initialsNode.textContent = initials(label.name);
  }
  if (user.avatar) { // the server sends only https avatars from hosts the app file allows
    if (!item.img) {
      item.img = document.createElement("img");
      item.img.alt = "";
      item.img.referrerPolicy = "no-referrer";
      item.avatar.prepend(item.img);
    }
    if (item.img.getAttribute("src") !== user.avatar) item.img.src = user.avatar;
    item.initialsNode.hidden = true;
    item.avatar.style.background = "";
  } else {
    if (item.img) { item.img.remove(); item.img = null; }
    item.initialsNode.hidden = false;
    item.avatar.style.background = colourFor(user.user);
  }
  item.you.hidden = !isYou;
  let detail = "";
  if (user.status === "away") detail = `away · ${ago(user.since)}`;
  else if (user.status === "offline") detail = `last seen ${ago(user.since)}${ago(user.since) === "just now" ? "" : " ago"}`;
  if (options.show_devices && user.devices > 1) detail += `${detail ? " · " : ""}${user.devices} devices`;
  if (user.location) detail += `${detail ? " · " : ""}editing ${user.location.label || user.location.field}${options.room ? "" : ` in ${user.location.room}`}`;
  item.detail.textContent = detail;
  item.detail.hidden = !detail;
  locatable(item, user, kit);
}

// Where a member edits, as a control: click or Enter shows their field (field presence).
function locatable(item, user, kit) {
  item.location = user.location || null;
  if (!item.onLocate) {
    item.onLocate = (event) => {
      if (!item.location || (event.type === "keydown" && event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      kit.locate(item.li.dataset.user, item.location);
    };
    item.text.addEventListener("click", item.onLocate);
    item.text.addEventListener("keydown", item.onLocate);
  }
  if (item.location) {
    item.text.setAttribute("role", "button");
    item.text.tabIndex = 0;
    item.text.classList.add("pk-located");
  } else if (item.text.hasAttribute("role")) {
    item.text.removeAttribute("role");
    item.text.removeAttribute("tabindex");
    item.text.classList.remove("pk-located");
  }
}
