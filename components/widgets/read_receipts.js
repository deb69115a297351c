// Read receipts of one room without a chat panel: who has seen the room's latest
// message ("Seen by Ana, Ben", or a count when many). Receipts themselves are sent by
// the chat panel when messages are on screen; private mode is enforced by the server.
export default (component) => mountWidget(component, "readReceipts", (kit, parentElement, options, key) => {
  const root = el("div", "pk-receipts");
  parentElement.appendChild(root);
  const state = { root, options };
  const unsubscribe = kit.subscribe(() => render(state, kit), ["receipt", "chat", "history", "room", "welcome"]);
  return {
    update(options) {
      state.options = options;
      kit.need(key, { rooms: { [options.room]: ["receipts", "chat"] }, history: { [options.room]: 1 } }); // the latest message
      render(state, kit);
    },
    destroy() { unsubscribe(); root.remove(); },
  };
});

function render(state, kit) {
  const room = kit.room(state.options.room);
  const latest = room.messages[room.messages.length - 1];
  const you = kit.you ? kit.you.user : null;
  const seen = latest
    ? Object.entries(room.receipts).filter(([user, upTo]) => user !== you && user !== latest.user && upTo >= latest.id).map(([user]) => user)
    : [];
  state.root.dataset.seen = seen.join(" ");
  const names = seen.map((user) => kit.nameOf(user));
  state.root.textContent = !latest
    ? ""
    : names.length === 0
      ? "Latest message: not seen yet"
      : names.length > state.options.collapse_above
        ? `Latest message seen by ${names.length} people`
        : `Latest message seen by ${names.join(", ")}`;
}
