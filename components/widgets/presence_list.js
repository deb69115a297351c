// The presence list: everyone in the org (or one room), live. Each member element has
// data-user and data-status. Above `counter_above` live members it becomes a counter,
// and goes back to a list only below counter_above - counter_hysteresis.
const ORDER = { online: 0, away: 1, offline: 2 };

export default (component) => mountWidget(component, "presenceList", (kit, parentElement, options) => {
  const root = el("div", "pk-presence");
  parentElement.appendChild(root);
  const state = { root, counter: false, options };
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
  const { root, options } = state;
  const list = members(kit, options);
  const live = list.filter((u) => u.status !== "offline");
  if (!state.counter && live.length > options.counter_above) state.counter = true;
  else if (state.counter && live.length < options.counter_above - options.counter_hysteresis) state.counter = false;

  const frame = el("div", "pk-frame");
  if (options.title) frame.appendChild(el("div", "pk-title", options.title));
  if (!kit.connected) frame.appendChild(el("div", "pk-banner", "Connecting…"));
  else if (kit.broker && !kit.broker.connected) frame.appendChild(el("div", "pk-banner", "Reconnecting to the broker…"));

  if (state.counter) {
    const online = live.filter((u) => u.status === "online").length;
    const counter = el("div", "pk-counter");
    counter.dataset.online = online;
    counter.dataset.away = live.length - online;
    counter.appendChild(el("span", "pk-count pk-online", `${online} online`));
    counter.appendChild(el("span", "pk-count pk-away", `${live.length - online} away`));
    frame.appendChild(counter);
  } else {
    const you = kit.you ? kit.you.user : null;
    list.sort((a, b) =>
      (b.user === you) - (a.user === you) ||
      ORDER[a.status] - ORDER[b.status] ||
      displayName(a).localeCompare(displayName(b)));
    const ul = el("ul", "pk-members");
    for (const user of list) ul.appendChild(member(user, user.user === you, options));
    frame.appendChild(ul);
  }
  root.replaceChildren(frame);
}

function member(user, isYou, options) {
  const li = el("li", `pk-member pk-${user.status}`);
  li.dataset.user = user.user;
  li.dataset.status = user.status;
  const avatar = el("span", "pk-avatar");
  if (user.avatar && /^https?:\/\//.test(user.avatar)) {
    const img = el("img");
    img.src = user.avatar;
    img.alt = "";
    avatar.appendChild(img);
  } else {
    avatar.textContent = initials(displayName(user));
    avatar.style.background = colourFor(user.user);
  }
  avatar.appendChild(el("span", "pk-dot"));
  li.appendChild(avatar);
  const text = el("span", "pk-text");
  const name = el("span", "pk-name", displayName(user));
  text.appendChild(name);
  if (isYou) text.appendChild(el("span", "pk-you", " (you)"));
  let detail = "";
  if (user.status === "away") detail = `away · ${ago(user.since)}`;
  else if (user.status === "offline") detail = `last seen ${ago(user.since)}${ago(user.since) === "just now" ? "" : " ago"}`;
  if (options.show_devices && user.devices > 1) detail += `${detail ? " · " : ""}${user.devices} devices`;
  if (detail) text.appendChild(el("span", "pk-detail", detail));
  li.appendChild(text);
  return li;
}
