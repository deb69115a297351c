// The presence list: everyone in the org (or one room), live. Each member element has
// data-user and data-status. Above `counter_above` live members it becomes a counter,
// and goes back to a list only below counter_above - counter_hysteresis. Entries are
// updated in place, keyed by user: an avatar image is loaded once, not on every change.
const ORDER = { online: 0, away: 1, offline: 2 };

export default (component) => mountWidget(component, "presenceList", (kit, parentElement, options) => {
  const root = el("div", "pk-presence");
  const title = el("div", "pk-title");
  const banner = el("div", "pk-banner");
  const counter = el("div", "pk-counter");
  const online = el("span", "pk-count pk-online");
  const away = el("span", "pk-count pk-away");
  counter.append(online, away);
  const list = el("ul", "pk-members");
  root.append(title, banner, counter, list);
  parentElement.appendChild(root);
  const state = { title, banner, counter, online, away, list, items: new Map(), counterMode: false, options };
  const unsubscribe = kit.subscribe(() => render(state, kit));
  const clock = setInterval(() => render(state, kit), 30000); // "away · 5 min" ages
  return {
    update(options) { state.options = options; render(state, kit); },
    destroy() { unsubscribe(); clearInterval(clock); root.remove(); },
  };
});

function members(kit, options) {
  const all = [...kit.users.values()];
  return options.room ? all.filter((u) => !u.rooms.length || u.rooms.includes(options.room)) : all;
}

function render(state, kit) {
  const { options } = state;
  const all = members(kit, options);
  const live = all.filter((u) => u.status !== "offline");
  if (!state.counterMode && live.length > options.counter_above) state.counterMode = true;
  else if (state.counterMode && live.length < options.counter_above - options.counter_hysteresis) state.counterMode = false;

  state.title.textContent = options.title || "";
  state.title.hidden = !options.title;
  const problem = kit.problem || (!kit.connected ? "Connecting…" : kit.broker && !kit.broker.connected ? "Reconnecting to the broker…" : "");
  state.banner.textContent = problem;
  state.banner.hidden = !problem;
  state.counter.hidden = !state.counterMode;
  state.list.hidden = state.counterMode;

  if (state.counterMode) {
    const count = live.filter((u) => u.status === "online").length;
    state.counter.dataset.online = count;
    state.counter.dataset.away = live.length - count;
    state.online.textContent = `${count} online`;
    state.away.textContent = `${live.length - count} away`;
    for (const item of state.items.values()) item.li.remove();
    state.items.clear();
    return;
  }
  const you = kit.you ? kit.you.user : null;
  all.sort((a, b) =>
    (b.user === you) - (a.user === you) ||
    ORDER[a.status] - ORDER[b.status] ||
    displayName(a).localeCompare(displayName(b)));
  const shown = new Set();
  let previous = null;
  for (const user of all) {
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
  item.detail.textContent = detail;
  item.detail.hidden = !detail;
}
