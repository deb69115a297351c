// The presence list: who is in the org (or one room), live. The server sends the list's
// first page of members in display order (online, away, then offline most recently
// seen first) and counts by status; "Show more" asks for the next page. Each member
// element has data-user and data-status, and says the status in words ("online",
// "away · 5 minutes ago"), not by its dot's colour alone. Above `counter_above` live members it
// becomes a counter (and a "Show all" button), and goes back to a list only below
// counter_above - counter_hysteresis. Entries are updated in place, keyed by user, and
// only what changed is written: a frame about another view, a room or a cursor never
// touches the list. A member editing a field says where ("editing Title"); activating
// them (click, Enter or Space) asks the page to show it (kit.locate).
const ORDER = { online: 0, away: 1, offline: 2 };
let listIds = 0; // ids inside this component's shadow root, for aria-labelledby

export default (component) => mountWidget(component, "presenceList", {
  className: "pk-presence",
  kinds: ["people", "people_delta", "connection", "broker", "welcome", "refused"],
  need: (w) => ({ presence: [{ room: w.options.room || null, limit: w.limit }] }),
  build(w) {
    const id = `pk-presence-title-${(listIds += 1)}`;
    const title = el("h3", "pk-title");
    title.id = id;
    const banner = el("div", "pk-banner");
    banner.setAttribute("role", "status");
    const counter = el("div", "pk-counter");
    const online = el("span", "pk-count pk-online");
    const away = el("span", "pk-count pk-away");
    counter.append(online, away);
    const list = el("ul", "pk-members");
    const more = el("button", "pk-more pk-button");
    more.type = "button";
    w.root.append(title, banner, counter, list, more);
    Object.assign(w, { titleId: id, title, banner, counter, online, away, list, more, items: new Map(), counterMode: false, expanded: false, limit: PAGE });
    w.listen(more, "click", () => {
      if (w.counterMode && !w.expanded) w.expanded = true;
      else w.limit = Math.min(w.limit + PAGE, 500);
      w.ask();
      render(w);
    });
    w.every(30000, () => render(w)); // "away · 5 minutes ago" ages
  },
  update(w, previous) {
    if (previous.room !== w.options.room) { w.limit = PAGE; w.expanded = false; }
    render(w);
  },
  receive(w, message) {
    if ((message.t === "people" || message.t === "people_delta") && (message.room || null) !== (w.options.room || null)) return;
    render(w);
  },
});

function render(w) {
  const { options, kit } = w;
  const view = kit.view(options.room || null);
  const live = view.counts.online + view.counts.away;
  if (!w.counterMode && live > options.counter_above) w.counterMode = true;
  else if (w.counterMode && live < options.counter_above - options.counter_hysteresis) { w.counterMode = false; w.expanded = false; }

  setText(w.title, options.title || "");
  setHidden(w.title, !options.title);
  // the list is named by its title when it has one
  setAttr(w.list, "aria-labelledby", options.title ? w.titleId : null);
  setAttr(w.list, "aria-label", options.title ? null : text("people"));
  const problem = kit.problem || (!kit.connected ? text("connecting") : kit.broker && !kit.broker.connected ? text("broker_reconnecting") : "");
  setText(w.banner, problem);
  setHidden(w.banner, !problem);
  setHidden(w.counter, !w.counterMode);
  setData(w.counter, "online", view.counts.online);
  setData(w.counter, "away", view.counts.away);
  setText(w.online, text("count_online", { count: view.counts.online }));
  setText(w.away, text("count_away", { count: view.counts.away }));
  const listed = !w.counterMode || w.expanded;
  setHidden(w.list, !listed);
  setHidden(w.more, listed && view.total <= view.members.size);
  setText(w.more, listed ? text("show_more", { count: view.total - view.members.size }) : text("show_all"));

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
    let item = w.items.get(user.user);
    if (!item) w.items.set(user.user, (item = memberItem(w, user.user)));
    updateMember(item, user, user.user === you, options, kit);
    const next = previous ? previous.nextSibling : w.list.firstChild;
    if (next !== item.li) w.list.insertBefore(item.li, next);
    previous = item.li;
  }
  for (const [user, item] of w.items) {
    if (!shown.has(user)) { item.li.remove(); w.items.delete(user); }
  }
}

function memberItem(w, userId) {
  const li = el("li", "pk-member");
  li.dataset.user = userId;
  const avatar = el("span", "pk-avatar");
  avatar.setAttribute("aria-hidden", "true"); // the name and status are said in words beside it
  const initialsNode = el("span", "pk-initials");
  const dot = el("span", "pk-dot");
  avatar.append(initialsNode, dot);
  const words = el("span", "pk-text");
  const name = el("span", "pk-name");
  const you = el("span", "pk-you", text("you"));
  const detail = el("span", "pk-detail");
  words.append(name, you, detail);
  li.append(avatar, words);
  const item = { li, avatar, initialsNode, img: null, text: words, name, you, detail, labelKey: "", background: "", location: null };
  // Where a member edits, as a control: click, Enter or Space shows their field (field presence).
  const locate = (event) => {
    if (!item.location || (event.type === "keydown" && event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    w.kit.locate(userId, item.location);
  };
  w.listen(words, "click", locate);
  w.listen(words, "keydown", locate);
  return item;
}

function updateMember(item, user, isYou, options, kit) {
  setClass(item.li, `pk-member pk-${user.status}`);
  setData(item.li, "status", user.status);
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
    setHidden(item.initialsNode, true);
  } else {
    if (item.img) { item.img.remove(); item.img = null; }
    setHidden(item.initialsNode, false);
  }
  const background = user.avatar ? "" : colourFor(user.user);
  if (item.background !== background) { item.background = background; item.avatar.style.background = background; }
  setHidden(item.you, !isYou);
  const since = ago(user.since);
  const parts = [user.status === "away" ? text("away", { ago: since })
    : user.status === "offline" ? text("last_seen", { ago: since }) : text("online")];
  if (options.show_devices && user.devices > 1) parts.push(text("devices", { count: user.devices }));
  if (user.location) {
    const where = user.location.label || user.location.field;
    parts.push(options.room ? text("editing", { field: where }) : text("editing_in", { field: where, room: user.location.room }));
  }
  setText(item.detail, parts.join(" · "));
  item.location = user.location || null;
  setAttr(item.text, "role", item.location ? "button" : null);
  setAttr(item.text, "tabindex", item.location ? "0" : null);
  setClass(item.text, item.location ? "pk-text pk-located" : "pk-text");
}
