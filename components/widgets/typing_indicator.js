// The typing indicator of one room: "Ana is typing…", "Ana and Ben are typing…",
// "3 people are typing…", never yourself. Typing in any text field of the page outside
// the kit's own widgets (st.chat_input, st.text_area, …) signals typing in its room.
const isTextField = (node) => node instanceof HTMLTextAreaElement || node instanceof HTMLInputElement;

export default (component) => mountWidget(component, "typingIndicator", (kit, parentElement, options, key) => {
  const root = el("div", "pk-typing");
  root.setAttribute("aria-live", "polite");
  parentElement.appendChild(root);
  const state = { root, options, sender: null };
  const onInput = (event) => {
    if (isTextField(event.target)) event.target.value ? state.sender.keystroke() : state.sender.stop();
  };
  const onBlur = (event) => { if (isTextField(event.target)) state.sender.stop(); };
  document.addEventListener("input", onInput, true);
  document.addEventListener("blur", onBlur, true);
  const unsubscribe = kit.subscribe(() => render(state, kit), ["typing", "room", "welcome"]);
  return {
    update(options) {
      if (!state.sender || state.options.room !== options.room || state.options.ttl !== options.ttl) {
        if (state.sender) state.sender.stop();
        state.sender = kit.typingSender(options.room, options.ttl);
      }
      state.options = options;
      kit.need(key, { rooms: { [options.room]: ["typing"] } });
      render(state, kit);
    },
    destroy() {
      unsubscribe();
      state.sender.stop();
      document.removeEventListener("input", onInput, true);
      document.removeEventListener("blur", onBlur, true);
      root.remove();
    },
  };
});

function render(state, kit) {
  const you = kit.you ? kit.you.user : null;
  const typists = kit.room(state.options.room).typists.filter((user) => user !== you);
  state.root.dataset.typists = typists.join(" ");
  state.root.textContent = typingText(typists.map((user) => kit.nameOf(user)));
}
