// Read receipts of one room without a chat panel: who has seen the room's latest
// message ("Latest message seen by Ana, Ben", or a count above `collapse_above`).
// Receipts themselves are sent by the chat panel when messages are on screen; private
// mode is enforced by the server. The line is a polite status: a screen reader hears it
// change.
export default (component) => mountWidget(component, "readReceipts", {
  className: "pk-read-receipts",
  kinds: ["receipt", "chat", "history", "room", "welcome"],
  need: (w) => ({ rooms: { [w.options.room]: ["receipts", "chat"] }, history: { [w.options.room]: 1 } }), // the latest message
  build(w) {
    w.line = el("div", "pk-receipts");
    w.line.setAttribute("role", "status");
    w.root.append(w.line);
  },
  update: render,
  receive(w, message) {
    const roomName = message.t === "chat" ? message.message.room : message.room;
    if (roomName === undefined || roomName === w.options.room) render(w);
  },
});

function render(w) {
  const { kit } = w;
  const room = kit.room(w.options.room);
  const latest = room.messages[room.messages.length - 1];
  const you = kit.you ? kit.you.user : null;
  const seen = latest
    ? Object.entries(room.receipts).filter(([user, upTo]) => user !== you && user !== latest.user && upTo >= latest.id).map(([user]) => user)
    : [];
  setHidden(w.line, !latest);
  if (latest) renderSeen(kit, w.line, seen, w.options.collapse_above, true);
}
