// Reaction bursts: a group of emoji buttons (each named "React with 👍"). Clicks animate
// at once here and are coalesced per emoji over burst_window_ms into one message with a
// count; every other tab animates the burst with its count, and tells a screen reader
// who reacted (politely, at most once per ANNOUNCE_GAP_MS.reaction). The bursts are
// decoration (aria-hidden); with prefers-reduced-motion they fade in place instead of
// rising. The server caps what a flooding tab can send.
export default (component) => mountWidget(component, "reactions", {
  className: "pk-reactions",
  kinds: ["reaction"],
  need: (w) => ({ rooms: { [w.options.room]: ["reactions"] } }),
  build(w) {
    w.row = el("div", "pk-reaction-row");
    w.row.setAttribute("role", "group");
    w.row.setAttribute("aria-label", text("reactions"));
    w.stage = el("div", "pk-bursts");
    w.stage.setAttribute("aria-hidden", "true");
    w.root.append(w.row, w.stage);
    w.pending = new Map();
    w.timer = null;
    w.emojis = "";
    w.say = announcer(w, "reaction", listed);
    w.onDestroy(() => flush(w));
  },
  update(w) {
    const emojis = JSON.stringify(w.options.emojis);
    if (emojis === w.emojis) return;
    w.emojis = emojis;
    w.row.replaceChildren(...w.options.emojis.map((emoji) => {
      const button = el("button", "pk-react", emoji);
      button.type = "button";
      button.dataset.emoji = emoji;
      button.setAttribute("aria-label", text("react_with", { emoji }));
      button.addEventListener("click", () => click(w, emoji)); // goes with the button
      return button;
    }));
  },
  receive(w, message) {
    if (message.room !== w.options.room || (w.kit.you && message.user === w.kit.you.user)) return;
    const name = w.kit.nameOf(message.user);
    burst(w, message.emoji, message.count, name);
    w.say(message.count > 1 ? text("reacted_times", { name, emoji: message.emoji, count: message.count }) : text("reacted", { name, emoji: message.emoji }));
  },
});

function click(w, emoji) {
  burst(w, emoji, 1, null);
  w.pending.set(emoji, (w.pending.get(emoji) || 0) + 1);
  if (!w.timer) w.timer = setTimeout(() => flush(w), w.options.burst_window_ms);
}

function flush(w) {
  clearTimeout(w.timer);
  w.timer = null;
  for (const [emoji, count] of w.pending) w.kit.send({ t: "react", room: w.options.room, emoji, count: Math.min(count, 1000) });
  w.pending.clear();
}

function burst(w, emoji, count, from) {
  if (w.stage.childElementCount > 30) return; // keep the page light under a flood
  const node = el("span", "pk-burst", count > 1 ? text("burst", { emoji, count }) : emoji);
  node.dataset.emoji = emoji;
  node.dataset.count = count;
  if (from) node.title = from;
  node.style.left = `${10 + Math.random() * 80}%`;
  w.stage.appendChild(node);
  node.addEventListener("animationend", () => node.remove());
}
