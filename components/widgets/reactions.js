// Reaction bursts: a row of emoji buttons. Clicks animate at once here and are
// coalesced per emoji over burst_window_ms into one message with a count; every other
// tab animates the burst with its count. The server caps what a flooding tab can send.
export default (component) => mountWidget(component, "reactions", (kit, parentElement, options, key) => {
  const root = el("div", "pk-reactions");
  const row = el("div", "pk-reaction-row");
  const stage = el("div", "pk-bursts");
  root.append(row, stage);
  parentElement.appendChild(root);
  const state = { root, row, stage, pending: new Map(), timer: null, options: null };
  const unsubscribe = kit.subscribe((message) => {
    if (message.room === state.options.room && (!kit.you || message.user !== kit.you.user)) {
      burst(state, message.emoji, message.count, kit.nameOf(message.user));
    }
  }, ["reaction"]);
  return {
    update(options) {
      if (JSON.stringify(state.options) === JSON.stringify(options)) return;
      state.options = options;
      kit.need(key, { rooms: { [options.room]: ["reactions"] } });
      row.replaceChildren(...options.emojis.map((emoji) => {
        const button = el("button", "pk-react", emoji);
        button.type = "button";
        button.dataset.emoji = emoji;
        button.addEventListener("click", () => click(state, kit, emoji));
        return button;
      }));
    },
    destroy() { unsubscribe(); flush(state, kit); root.remove(); },
  };
});

function click(state, kit, emoji) {
  burst(state, emoji, 1, null);
  state.pending.set(emoji, (state.pending.get(emoji) || 0) + 1);
  if (!state.timer) state.timer = setTimeout(() => flush(state, kit), state.options.burst_window_ms);
}

function flush(state, kit) {
  clearTimeout(state.timer);
  state.timer = null;
  for (const [emoji, count] of state.pending) kit.send({ t: "react", room: state.options.room, emoji, count: Math.min(count, 1000) });
  state.pending.clear();
}

function burst(state, emoji, count, from) {
  if (state.stage.childElementCount > 30) return; // keep the page light under a flood
  const node = el("span", "pk-burst", count > 1 ? `${emoji} ×${count}` : emoji);
  node.dataset.emoji = emoji;
  node.dataset.count = count;
  if (from) node.title = from;
  node.style.left = `${10 + Math.random() * 80}%`;
  state.stage.appendChild(node);
  node.addEventListener("animationend", () => node.remove());
}
