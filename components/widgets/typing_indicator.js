// The typing indicator of one room: "Ana is typing…", "Ana and Ben are typing…",
// "3 people are typing…", never yourself. Typing in any text field of the page outside
// the kit's own widgets (st.chat_input, st.text_area, …) signals typing in its room.
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const kit = presenceKit();
  kit.onTokenExpired = () => setTriggerValue("token_expired", Date.now());
  kit.configure(data.connection);

  let state = parentElement.__typingIndicator;
  if (!state) {
    const root = el("div", "pk-typing");
    root.setAttribute("aria-live", "polite");
    parentElement.appendChild(root);
    state = parentElement.__typingIndicator = { root, options: data.options };
    state.sender = kit.typingSender(data.options.room, data.options.ttl);
    state.onInput = (event) => {
      const field = event.target;
      if (!(field instanceof HTMLTextAreaElement || field instanceof HTMLInputElement)) return;
      if (field.value) state.sender.keystroke();
      else state.sender.stop();
    };
    state.onBlur = (event) => {
      if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement) state.sender.stop();
    };
    document.addEventListener("input", state.onInput, true);
    document.addEventListener("blur", state.onBlur, true);
    state.unsubscribe = kit.subscribe(() => render(state, kit));
  }
  state.options = data.options;
  render(state, kit);
  return () => {
    state.unsubscribe();
    state.sender.stop();
    document.removeEventListener("input", state.onInput, true);
    document.removeEventListener("blur", state.onBlur, true);
    state.root.remove();
    delete parentElement.__typingIndicator;
  };
}

function render(state, kit) {
  const you = kit.you ? kit.you.user : null;
  const typists = kit.room(state.options.room).typists.filter((user) => user !== you);
  state.root.dataset.typists = typists.join(" ");
  state.root.textContent = typingText(typists.map(kit.nameOf));
}
