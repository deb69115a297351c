// The chat panel of one room: messages with sender and time, a composer, who is here,
// who is typing, and "Seen by …" under the latest message each user has read. A read
// receipt goes out only for a message that was actually on screen in a visible tab,
// never for one's own messages, and never in private mode. The server sends the latest
// `history` messages at join; scrolling to the top (or the "Load earlier messages"
// button) asks for the page before them. A message shows as sent only once the server
// stored and published it; until then the composer keeps its text, and says why not.
const SEEN_COLLAPSE_ABOVE = 3;

const HERE = 6; // people shown in the header

export default (component) => mountWidget(component, "chatPanel", (kit, parentElement, options, key) => {
  const state = build(parentElement, kit, options);
  return {
    update(options) {
      state.options = options;
      kit.need(key, {
        rooms: { [options.room]: ["chat", "typing", "receipts"] }, presence: [{ room: options.room, limit: HERE }], history: { [options.room]: options.history },
      });
      render(state, kit);
    },
    destroy() {
      state.unsubscribe();
      state.typing.stop();
      state.visibility.disconnect();
      document.removeEventListener("visibilitychange", state.onVisible);
      state.root.remove();
    },
  };
});

function build(parentElement, kit, options) {
  const root = el("div", "pk-chat");
  const header = el("div", "pk-chat-header");
  const title = el("span", "pk-chat-title", `# ${options.room}`);
  const here = el("span", "pk-here");
  header.append(title, here);
  const earlier = el("button", "pk-earlier", "Load earlier messages");
  earlier.type = "button";
  earlier.hidden = true;
  const historyNote = el("div", "pk-history-note");
  historyNote.setAttribute("role", "status");
  const list = el("div", "pk-messages");
  list.setAttribute("role", "log");
  if (options.height !== "auto") list.style.height = `${options.height}px`;
  const typingLine = el("div", "pk-typing");
  const form = el("form", "pk-composer");
  const input = el("textarea", "pk-input");
  input.rows = 1;
  input.maxLength = 4000;
  input.placeholder = `Message #${options.room}`;
  const send = el("button", "pk-send", "Send");
  send.type = "submit";
  form.append(input, send);
  const sendStatus = el("div", "pk-send-status");
  sendStatus.setAttribute("role", "status");
  root.append(header, historyNote, earlier, list, typingLine, form, sendStatus);
  parentElement.appendChild(root);

  const state = { root, here, earlier, historyNote, list, typingLine, input, options, readSent: "", rendered: new Map() };
  state.typing = kit.typingSender(options.room, options.typing_ttl);
  // the text stays in the composer until the server says it was stored and sent
  const submit = async () => {
    const text = input.value.trim();
    if (!text || state.sending) return;
    state.sending = true;
    input.readOnly = send.disabled = true;
    form.setAttribute("aria-busy", "true");
    const result = await kit.sendChat(state.options.room, text);
    state.sending = false;
    input.readOnly = send.disabled = false;
    form.removeAttribute("aria-busy");
    sendStatus.textContent = result.error || "";
    if (result.error) return;
    if (input.value.trim() === text) input.value = "";
    state.typing.stop();
  };
  const loadEarlier = () => { if (kit.earlier(state.options.room)) render(state, kit); };
  earlier.addEventListener("click", loadEarlier);
  list.addEventListener("scroll", () => { if (list.scrollTop <= 2) loadEarlier(); }, { passive: true });
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submit(); }
  });
  input.addEventListener("input", () => (input.value ? state.typing.keystroke() : state.typing.stop()));
  input.addEventListener("blur", () => state.typing.stop());

  // what is on screen: messages intersecting the list's viewport
  state.onScreen = new Set();
  state.visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) state.onScreen.add(entry.target.dataset.id);
      else state.onScreen.delete(entry.target.dataset.id);
    }
    markRead(state, kit);
  }, { root: list, threshold: 0.6 });
  state.onVisible = () => markRead(state, kit);
  document.addEventListener("visibilitychange", state.onVisible);
  state.unsubscribe = kit.subscribe(() => render(state, kit), ["chat", "history", "chat_ack", "typing", "receipt", "room", "people", "people_delta", "welcome"]);
  return state;
}

function markRead(state, kit) {
  if (state.options.private_receipts || document.visibilityState !== "visible" || !kit.you) return;
  let newest = "";
  for (const message of kit.room(state.options.room).messages) {
    if (message.user !== kit.you.user && state.onScreen.has(message.id) && message.id > newest) newest = message.id;
  }
  if (newest && newest > state.readSent && kit.send({ t: "read", room: state.options.room, id: newest })) {
    state.readSent = newest;
  }
}

function render(state, kit) {
  const { options, list } = state;
  const room = kit.room(options.room);
  const you = kit.you ? kit.you.user : null;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const anchor = atBottom ? null : firstInView(state); // keeps what is read in place when earlier messages come in above

  const view = kit.view(options.room);
  const here = [...view.members.values()].filter((u) => u.status !== "offline" && u.user !== you);
  const others = othersIn(kit, view);
  state.here.replaceChildren(...here.slice(0, 5).map((u) => {
    const dot = el("span", "pk-mini", initials(displayName(u)));
    dot.style.background = colourFor(u.user);
    dot.title = kit.nameOf(u.user);
    return dot;
  }), el("span", "pk-here-count", others ? `${others + 1} here` : "just you"));

  state.earlier.hidden = !room.more;
  state.earlier.disabled = room.loading;
  state.earlier.textContent = room.loading ? "Loading earlier messages…" : "Load earlier messages";
  state.historyNote.textContent = room.unavailable ? "Chat history is unavailable right now: showing recent messages only." : "";

  const messages = room.messages;
  const seenBy = new Map(); // message id -> users whose read marker is there
  for (const [user, upTo] of Object.entries(room.receipts)) {
    if (user === you) continue;
    const at = messages.filter((m) => m.id <= upTo).pop();
    if (at) seenBy.set(at.id, [...(seenBy.get(at.id) || []), user]);
  }
  const keep = new Set(messages.map((m) => m.id));
  for (const [id, node] of state.rendered) {
    if (!keep.has(id)) { state.visibility.unobserve(node); node.remove(); state.rendered.delete(id); }
  }
  let previous = null;
  for (const message of messages) {
    let node = state.rendered.get(message.id);
    if (!node) {
      node = messageNode(message, message.user === you);
      state.rendered.set(message.id, node);
      state.visibility.observe(node);
    }
    senderLabel(node, kit, message);
    if (node.previousSibling !== previous || node.parentNode !== list) list.insertBefore(node, previous ? previous.nextSibling : list.firstChild);
    seenLine(node, (seenBy.get(message.id) || []).map((user) => kit.nameOf(user)));
    previous = node;
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
  else if (anchor && anchor.node.parentNode === list) list.scrollTop += anchor.node.offsetTop - anchor.top;
  const typists = room.typists.filter((user) => user !== you);
  state.typingLine.dataset.typists = typists.join(" ");
  state.typingLine.textContent = typingText(typists.map((user) => kit.nameOf(user)));
  markRead(state, kit);
}

// The first message at least partly in view, and where it is.
function firstInView(state) {
  const top = state.list.scrollTop;
  for (const node of state.rendered.values()) {
    if (node.offsetTop + node.offsetHeight > top) return { node, top: node.offsetTop };
  }
  return null;
}

function messageNode(message, mine) {
  const node = el("div", mine ? "pk-msg pk-mine" : "pk-msg");
  node.dataset.id = message.id;
  node.dataset.user = message.user;
  const meta = el("div", "pk-meta");
  meta.append(el("span", "pk-sender"));
  if (message.at) meta.append(el("span", "pk-time", new Date(message.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  node.append(meta, el("div", "pk-text", message.text));
  return node;
}

// The sender's name as presence shows it now (with the id when someone else in view
// shows the same name), redrawn only when that changes.
function senderLabel(node, kit, message) {
  const { name, id } = kit.label(message.user, message.name);
  const key = `${name}\u0000${id || ""}`;
  if (node.dataset.label === key) return;
  node.dataset.label = key;
  node.querySelector(".pk-sender").replaceChildren(nameElement(kit, message.user, message.name));
}

function seenLine(node, names) {
  let line = node.querySelector(".pk-seen");
  if (!names.length) { if (line) line.remove(); return; }
  if (!line) { line = el("div", "pk-seen"); node.appendChild(line); }
  line.dataset.count = names.length;
  line.textContent = names.length > SEEN_COLLAPSE_ABOVE ? `Seen by ${names.length} people` : `Seen by ${names.join(", ")}`;
}
