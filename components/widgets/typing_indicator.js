// The typing indicator of one room: "Ana is typing…", "Ana and Ben are typing…",
// "3 people are typing…", never yourself. Typing in any text field of the page outside
// the kit's own widgets (st.chat_input, st.text_area, …) signals typing in its room.
const isTextField = (node) => node instanceof HTMLTextAreaElement || node instanceof HTMLInputElement;

export default (component) => mountWidget(component, "typingIndicator", (kit, parentElement, options) => {
  const root = el("div", "pk-typing");
  root.setAttribute("aria-live", "polite");
  parentElement.appendChild(root);
  const state = { root, options };
  const sender = kit.typingSender(options.room, options.ttl);
  const onInput = (event) => {
    if (isTextField(event.target)) event.target.value ? sender.keystroke() : sender.stop();
  };
  const onBlur = (event) => { if (isTextField(event.target)) sender.stop(); };
  document.addEventListener("input", onInput, true);
  document.addEventListener("blur", onBlur, true);
  const unsubscribe = kit.subscribe(() => render(state, kit));
  return {
    update(options) { state.options = options; render(state, kit); },
    destroy() {
      unsubscribe();
      sender.stop();
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
