// The typing indicator of one room: "Ana is typing…", "Ana and Ben are typing…",
// "3 people are typing…", never yourself; someone starting to type is announced to
// screen readers (politely, at most once per ANNOUNCE_GAP_MS.typing, and not again when
// a chat panel of the room just said it). Typing in any text
// field of the page outside the kit's own widgets (st.chat_input, st.text_area, …)
// signals typing in its room.
const isTextField = (node) => node instanceof HTMLTextAreaElement || node instanceof HTMLInputElement;

export default (component) => mountWidget(component, "typingIndicator", {
  className: "pk-typing-indicator",
  kinds: ["typing", "room", "welcome"],
  need: (w) => ({ rooms: { [w.options.room]: ["typing"] } }),
  build(w) {
    w.line = el("div", "pk-typing");
    w.root.append(w.line);
    w.say = announcer(w, "typing", (items) => items[items.length - 1]);
    w.listen(document, "input", (event) => {
      if (isTextField(event.target)) event.target.value ? w.sender.keystroke() : w.sender.stop();
    }, true);
    w.listen(document, "blur", (event) => { if (isTextField(event.target)) w.sender.stop(); }, true);
    w.onDestroy(() => w.sender.stop());
  },
  update(w, previous) {
    if (!w.sender || previous.room !== w.options.room || previous.ttl !== w.options.ttl) {
      if (w.sender) w.sender.stop();
      w.sender = w.kit.typingSender(w.options.room, w.options.ttl);
    }
    renderTyping(w.kit, w.line, w.options.room, null);
  },
  receive(w, message) {
    if (message.room === undefined || message.room === w.options.room) renderTyping(w.kit, w.line, w.options.room, w.say);
  },
});
