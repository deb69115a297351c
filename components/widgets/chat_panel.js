// The chat panel of one room: messages with sender and time, a labelled composer, who is
// here, who is typing, and "Seen by …" under the latest message each user has read
// (collapsed to a count above `collapse_above`). A read receipt goes out only for a
// message that was actually on screen in a visible tab, never for one's own messages,
// and never in private mode. The server sends the latest `history` messages at join;
// scrolling to the top (or the "Load earlier messages" button) asks for the page before
// them. A message shows as sent only once the server stored and published it; until then
// the composer keeps its text, and says why not. Each kind of message updates only its
// part (a typing frame the typing line, a receipt the "Seen by" lines), keyed by message
// id. Screen readers hear new messages from others and who starts typing through polite
// live regions that speak at most once per ANNOUNCE_GAP_MS (several arrivals become one
// "3 new messages from Ana and Ben").
const HERE = 6; // people shown in the header
const ANNOUNCED_CHARS = 140; // of a new message's text

export default (component) => mountWidget(component, "chatPanel", {
  className: "pk-chat",
  kinds: ["chat", "history", "chat_ack", "typing", "receipt", "room", "people", "people_delta", "welcome"],
  need: (w) => ({
    rooms: { [w.options.room]: ["chat", "typing", "receipts"] }, presence: [{ room: w.options.room, limit: HERE }], history: { [w.options.room]: w.options.history },
  }),
  build,
  update(w, previous) {
    if (!w.typing || previous.room !== w.options.room || previous.typing_ttl !== w.options.typing_ttl) {
      if (w.typing) w.typing.stop();
      w.typing = w.kit.typingSender(w.options.room, w.options.typing_ttl);
    }
    const { room, height } = w.options;
    setText(w.title, text("chat_title", { room }));
    setAttr(w.list, "aria-label", text("messages", { room }));
    setAttr(w.input, "placeholder", text("composer", { room }));
    setAttr(w.input, "aria-label", text("composer", { room }));
    const listHeight = height === "auto" ? "" : `${height}px`;
    if (w.list.style.height !== listHeight) w.list.style.height = listHeight;
    render(w);
  },
  receive(w, message) {
    const roomName = message.t === "chat" ? message.message.room : message.room;
    if (roomName !== undefined && roomName !== w.options.room) return;
    switch (message.t) {
      case "typing": renderTyping(w.kit, w.typingLine, w.options.room, w.sayTyping); break;
      case "receipt": renderReceipts(w); break;
      case "people": case "people_delta": renderHere(w); break;
      case "chat_ack": renderNotes(w); break;
      case "chat":
        if (!w.kit.you || message.message.user !== w.kit.you.user) w.sayChat(message.message);
        renderMessages(w);
        break;
      case "history": renderNotes(w); renderMessages(w); break;
      default: render(w);
    }
  },
  destroy(w) {
    w.typing.stop();
    w.visibility.disconnect();
  },
});

function build(w) {
  const { kit } = w;
  const header = el("div", "pk-chat-header");
  w.title = el("h3", "pk-chat-title");
  w.here = el("span", "pk-here");
  w.hereFaces = el("span", "pk-here-faces");
  w.hereFaces.setAttribute("aria-hidden", "true"); // said in words by hereNames
  w.hereNames = el("span", "pk-sr");
  w.hereCount = el("span", "pk-here-count");
  w.here.append(w.hereFaces, w.hereNames, w.hereCount);
  header.append(w.title, w.here);
  w.earlier = el("button", "pk-earlier pk-button", text("load_earlier"));
  w.earlier.type = "button";
  w.earlier.hidden = true;
  w.historyNote = el("div", "pk-history-note");
  w.historyNote.setAttribute("role", "status");
  // a log, read with the keyboard (it scrolls); arrivals are spoken by sayChat instead of
  // by the log itself, so a busy room is one summary, not every message
  w.list = el("div", "pk-messages");
  w.list.setAttribute("role", "log");
  w.list.setAttribute("aria-live", "off");
  w.list.tabIndex = 0;
  w.typingLine = el("div", "pk-typing");
  const form = el("form", "pk-composer");
  w.input = el("textarea", "pk-input");
  w.input.rows = 1;
  w.input.maxLength = 4000;
  const send = el("button", "pk-send pk-button", text("send"));
  send.type = "submit";
  form.append(w.input, send);
  const sendStatus = el("div", "pk-send-status");
  sendStatus.setAttribute("role", "status");
  w.root.append(header, w.historyNote, w.earlier, w.list, w.typingLine, form, sendStatus);
  Object.assign(w, { readSent: "", rendered: new Map(), seenLines: new Map(), hereKey: null, onScreen: new Set() });
  w.sayTyping = announcer(w, "typing", (items) => items[items.length - 1]);
  w.sayChat = announcer(w, "chat", (items) => items.length === 1
    ? text("new_message", { name: kit.nameOf(items[0].user, items[0].name), text: items[0].text.slice(0, ANNOUNCED_CHARS) })
    : text("new_messages", { count: items.length, names: [...new Set(items.map((m) => kit.nameOf(m.user, m.name)))] }));

  // the text stays in the composer until the server says it was stored and sent
  const submit = async () => {
    const words = w.input.value.trim();
    if (!words || w.sending) return;
    w.sending = true;
    w.input.readOnly = send.disabled = true;
    form.setAttribute("aria-busy", "true");
    const result = await kit.sendChat(w.options.room, words);
    w.sending = false;
    w.input.readOnly = send.disabled = false;
    form.removeAttribute("aria-busy");
    sendStatus.textContent = result.error || "";
    if (result.error) return;
    if (w.input.value.trim() === words) w.input.value = "";
    w.typing.stop();
  };
  const loadEarlier = () => { if (kit.earlier(w.options.room)) renderNotes(w); };
  w.listen(w.earlier, "click", loadEarlier);
  w.listen(w.list, "scroll", () => { if (w.list.scrollTop <= 2) loadEarlier(); }, { passive: true });
  w.listen(form, "submit", (event) => { event.preventDefault(); submit(); });
  w.listen(w.input, "keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submit(); }
  });
  w.listen(w.input, "input", () => (w.input.value ? w.typing.keystroke() : w.typing.stop()));
  w.listen(w.input, "blur", () => w.typing.stop());

  // what is on screen: messages intersecting the list's viewport
  w.visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) w.onScreen.add(entry.target.dataset.id);
      else w.onScreen.delete(entry.target.dataset.id);
    }
    markRead(w);
  }, { root: w.list, threshold: 0.6 });
  w.listen(document, "visibilitychange", () => markRead(w));
}

function markRead(w) {
  const { kit } = w;
  if (w.options.private_receipts || document.visibilityState !== "visible" || !kit.you) return;
  let newest = "";
  for (const message of kit.room(w.options.room).messages) {
    if (message.user !== kit.you.user && w.onScreen.has(message.id) && message.id > newest) newest = message.id;
  }
  if (newest && newest > w.readSent && kit.send({ t: "read", room: w.options.room, id: newest })) {
    w.readSent = newest;
  }
}

function render(w) {
  renderHere(w);
  renderNotes(w);
  renderMessages(w);
  renderTyping(w.kit, w.typingLine, w.options.room, null);
}

// Who is here, in the header: up to five faces (decoration) and their names in words.
function renderHere(w) {
  const { kit } = w;
  const you = kit.you ? kit.you.user : null;
  const view = kit.view(w.options.room);
  const here = [...view.members.values()].filter((u) => u.status !== "offline" && u.user !== you).slice(0, 5);
  const others = othersIn(kit, view);
  const names = here.map((u) => kit.nameOf(u.user));
  const key = JSON.stringify([here.map((u) => u.user), names, others]);
  if (key === w.hereKey) return;
  w.hereKey = key;
  w.hereFaces.replaceChildren(...here.map((u, i) => {
    const face = el("span", "pk-mini", initials(displayName(u)));
    face.style.background = colourFor(u.user);
    face.title = names[i];
    return face;
  }));
  setText(w.hereNames, names.length ? text("who_is_here", { names }) : "");
  setText(w.hereCount, others ? text("here", { count: others + 1 }) : text("just_you"));
}

function renderNotes(w) {
  const room = w.kit.room(w.options.room);
  setHidden(w.earlier, !room.more);
  w.earlier.disabled = room.loading;
  setText(w.earlier, room.loading ? text("loading_earlier") : text("load_earlier"));
  setText(w.historyNote, room.unavailable ? text("history_unavailable") : "");
}

function renderMessages(w) {
  const { kit, list } = w;
  const messages = kit.room(w.options.room).messages;
  const you = kit.you ? kit.you.user : null;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const anchor = atBottom ? null : firstInView(w); // keeps what is read in place when earlier messages come in above
  const keep = new Set(messages.map((m) => m.id));
  for (const [id, node] of w.rendered) {
    if (!keep.has(id)) { w.visibility.unobserve(node); node.remove(); w.rendered.delete(id); w.seenLines.delete(id); }
  }
  let previous = null;
  for (const message of messages) {
    let node = w.rendered.get(message.id);
    if (!node) {
      node = messageNode(message, message.user === you);
      w.rendered.set(message.id, node);
      w.visibility.observe(node);
    }
    senderLabel(node, kit, message);
    if (node.previousSibling !== previous || node.parentNode !== list) list.insertBefore(node, previous ? previous.nextSibling : list.firstChild);
    previous = node;
  }
  renderReceipts(w);
  if (atBottom) list.scrollTop = list.scrollHeight;
  else if (anchor && anchor.node.parentNode === list) list.scrollTop += anchor.node.offsetTop - anchor.top;
  markRead(w);
}

// "Seen by …" under the latest message each other user has read up to: one binary
// search per receipt (messages are in id order), and only the lines that change.
function renderReceipts(w) {
  const { kit } = w;
  const room = kit.room(w.options.room);
  const messages = room.messages;
  const you = kit.you ? kit.you.user : null;
  const seenBy = new Map(); // message id -> users whose read marker is there
  for (const [user, upTo] of Object.entries(room.receipts)) {
    if (user === you) continue;
    let low = 0, high = messages.length; // the first message after upTo
    while (low < high) {
      const middle = (low + high) >> 1;
      if (messages[middle].id <= upTo) low = middle + 1; else high = middle;
    }
    if (low > 0) seenBy.set(messages[low - 1].id, [...(seenBy.get(messages[low - 1].id) || []), user]);
  }
  for (const [id, line] of w.seenLines) {
    if (!seenBy.has(id)) { line.remove(); w.seenLines.delete(id); }
  }
  for (const [id, users] of seenBy) {
    const node = w.rendered.get(id);
    if (!node) continue;
    let line = w.seenLines.get(id);
    if (!line) { line = el("div", "pk-seen"); node.appendChild(line); w.seenLines.set(id, line); }
    renderSeen(kit, line, users.sort(), w.options.collapse_above, false);
  }
}

// The first message at least partly in view, and where it is.
function firstInView(w) {
  const top = w.list.scrollTop;
  for (const node of w.rendered.values()) {
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
  if (message.at) {
    const at = new Date(message.at * 1000);
    const time = el("time", "pk-time", at.toLocaleTimeString(pageLanguage().locale, { hour: "2-digit", minute: "2-digit" }));
    time.dateTime = at.toISOString();
    meta.append(time);
  }
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
