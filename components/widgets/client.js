// The kit's browser side, shared by every widget on the page: one WebSocket per tab,
// one device per tab. The first widget that mounts creates it on `window`; the others
// reuse it. Liveness is the socket itself (the server pings at the protocol level), so
// there is no heartbeat timer here; the only timer is the away detector.
const MAX_MESSAGES = 1000; // per room, in the tab: a long-open tab does not grow forever

function presenceKit() {
  if (window.__presenceKit) return window.__presenceKit;
  const kit = {
    config: null,
    deviceId: null,
    socket: null,
    connected: false,
    closedReason: "",
    users: new Map(),
    rooms: {},
    broker: { connected: true, error: "" },
    you: null,
    listeners: new Set(),
    problem: "", // why the socket is closed and not coming back at once, in words for the page
    nameKeys: new Map(), // name key -> user ids showing that name (to tell look-alikes apart)
    retryDelay: 250,
    retryTimer: null,
    activity: { status: "online", lastInput: Date.now(), awayTimer: null },
    onTokenExpired: null,
  };
  window.__presenceKit = kit;

  const storageKey = () => `presence-kit:${kit.config.org}:${kit.config.user}:device`;
  const newDeviceId = () => "tab-" + Math.random().toString(36).slice(2, 10) + Date.now().toString(36).slice(-4);

  kit.configure = (config) => {
    const first = kit.config === null;
    const changedUser = !first && (kit.config.user !== config.user || kit.config.org !== config.org);
    kit.config = { ...(kit.config || {}), ...config };
    if (first || changedUser) {
      kit.deviceId = sessionStorage.getItem(storageKey()) || newDeviceId();
      sessionStorage.setItem(storageKey(), kit.deviceId);
      if (kit.socket) kit.socket.close(1000, "identity changed");
      else connect();
    } else if (!kit.connected && kit.closedReason === "token") {
      connect(); // a rerun brought a fresh token
    }
    kit.activity.awayAfterMs = (config.awayAfter || 300) * 1000;
    armAway();
  };

  kit.subscribe = (fn) => {
    kit.listeners.add(fn);
    return () => kit.listeners.delete(fn);
  };

  kit.send = (message) => {
    if (kit.socket && kit.socket.readyState === WebSocket.OPEN) {
      kit.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  };

  const emit = (message) => {
    for (const fn of kit.listeners) {
      try { fn(message); } catch (err) { console.error("presence-kit widget failed", err); }
    }
  };

  const room = (name) => (kit.rooms[name] ||= { typists: [], receipts: {}, messages: [], cursors: [] });
  kit.room = room;

  // Live users other than this tab's user, in `roomName` (or in no particular room).
  kit.others = (roomName) =>
    [...kit.users.values()].filter((u) => u.status !== "offline" && (!kit.you || u.user !== kit.you.user) && (!u.rooms.length || u.rooms.includes(roomName)));
  // The name to show for `user`: the signed name for this tab's own user, the user's
  // presence name, else `fallback` (a chat message's), else the id. `id` is set when
  // someone else in view shows the same name, so nobody passes for somebody else.
  kit.label = (user, fallback) => {
    const known = kit.users.get(user);
    const name = kit.you && user === kit.you.user ? kit.you.name : (known && known.name) || fallback || user;
    const holders = kit.nameKeys.get(nameKey(name));
    const ambiguous = name !== user && holders && (holders.size > 1 || !holders.has(user));
    return { name, id: ambiguous ? user : null };
  };
  // The same as text for a sentence ("Ana is typing…"): the name isolated in FSI ... PDI
  // so right-to-left text cannot spill into the words around it.
  kit.nameOf = (user, fallback) => {
    const { name, id } = kit.label(user, fallback);
    return `\u2068${name}\u2069${id ? ` (${id})` : ""}`;
  };
  const indexName = (user, name, add) => {
    if (!name) return;
    const key = nameKey(name);
    const holders = kit.nameKeys.get(key) || new Set();
    if (add) holders.add(user); else holders.delete(user);
    if (holders.size) kit.nameKeys.set(key, holders); else kit.nameKeys.delete(key);
  };
  const setUser = (user) => {
    const old = kit.users.get(user.user);
    if (old) indexName(old.user, old.name, false);
    kit.users.set(user.user, user);
    indexName(user.user, user.name, true);
  };

  function apply(message) {
    switch (message.t) {
      case "welcome":
        kit.you = { user: message.user, device: message.device, name: message.name };
        break;
      case "snapshot":
        kit.users = new Map();
        kit.nameKeys = new Map();
        for (const user of message.users) setUser(user);
        kit.rooms = message.rooms;
        kit.broker = message.broker;
        break;
      case "presence":
        setUser(message.user);
        break;
      case "gone": {
        const old = kit.users.get(message.user);
        if (old) indexName(old.user, old.name, false);
        kit.users.delete(message.user);
        break;
      }
      case "typing":
        room(message.room).typists = message.typists;
        break;
      case "chat": {
        const messages = room(message.message.room).messages;
        if (!messages.some((m) => m.id === message.message.id)) {
          messages.push(message.message);
          messages.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
          if (messages.length > MAX_MESSAGES) messages.splice(0, messages.length - MAX_MESSAGES);
        }
        break;
      }
      case "receipt":
        room(message.room).receipts[message.user] = message.up_to;
        break;
      case "broker":
        kit.broker = { connected: message.connected, error: message.error, url: message.url };
        break;
      case "token":
        kit.config.token = message.token;
        return; // nothing for widgets to show
    }
    emit(message);
  }

  // Close codes the server explains (components/tab_admission.py), and what to say.
  const REFUSED = {
    4403: { text: "This page's address may not connect to the presence server.", retry: 0 },
    4429: { text: "You have too many tabs open here: close one to join (this tab joins by itself then).", retry: 15000 },
    4431: { text: "Too many connections from your network to the presence server; retrying soon.", retry: 30000 },
  };

  function connect() {
    clearTimeout(kit.retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${kit.config.wsPath}`);
    kit.socket = socket;
    socket.onopen = () => {
      // who we are goes in the first frame, never in the URL (logs and proxies keep URLs)
      socket.send(JSON.stringify({ t: "hello", token: kit.config.token, device: kit.deviceId }));
      kit.connected = true;
      kit.closedReason = "";
      kit.problem = "";
      kit.retryDelay = 250;
      sendActivity();
      emit({ t: "connection", connected: true });
    };
    socket.onmessage = (event) => {
      try { apply(JSON.parse(event.data)); } catch (err) { console.error("presence-kit: bad message", err); }
    };
    socket.onclose = (event) => {
      if (kit.socket !== socket) return;
      kit.socket = null;
      kit.connected = false;
      const refused = REFUSED[event.code];
      kit.problem = refused ? refused.text : "";
      emit({ t: "connection", connected: false, code: event.code });
      if (event.code === 4409) { // our device id is live in another tab (a duplicated tab)
        kit.deviceId = newDeviceId();
        sessionStorage.setItem(storageKey(), kit.deviceId);
        connect();
      } else if (event.code === 4401) { // token expired or refused: ask Python for a new one
        kit.closedReason = "token";
        if (kit.onTokenExpired) kit.onTokenExpired();
      } else if (refused) {
        if (refused.retry) kit.retryTimer = setTimeout(connect, refused.retry);
      } else if (event.code !== 1000 || event.reason === "identity changed") {
        kit.retryTimer = setTimeout(connect, kit.retryDelay);
        kit.retryDelay = Math.min(kit.retryDelay * 2, 5000);
      }
    };
  }

  // -- typing: refreshed while keys keep coming, stopped on a pause, send or blur ------
  const TYPING_REFRESH_MS = 2000;
  const TYPING_PAUSE_MS = 3000;
  kit.typingSender = (roomName, ttlSeconds) => {
    let active = false, sentAt = 0, pauseTimer = null;
    const stop = () => {
      clearTimeout(pauseTimer);
      if (active) kit.send({ t: "typing", room: roomName, active: false });
      active = false;
    };
    const keystroke = () => {
      const now = Date.now();
      if (!active || now - sentAt >= TYPING_REFRESH_MS) {
        if (kit.send({ t: "typing", room: roomName, active: true, ttl: ttlSeconds })) {
          active = true;
          sentAt = now;
        }
      }
      clearTimeout(pauseTimer);
      pauseTimer = setTimeout(stop, TYPING_PAUSE_MS);
    };
    return { keystroke, stop };
  };

  // -- away: no input for awayAfter (and hidden pages give no input) -----------------
  function sendActivity() {
    const a = kit.activity;
    kit.send(a.status === "away" ? { t: "activity", status: "away", since: a.lastInput / 1000 } : { t: "activity", status: "online" });
  }
  function armAway() {
    const a = kit.activity;
    clearTimeout(a.awayTimer);
    if (a.status === "away") return;
    const wait = Math.max(0, a.lastInput + a.awayAfterMs - Date.now());
    a.awayTimer = setTimeout(() => {
      if (Date.now() - a.lastInput >= a.awayAfterMs) {
        a.status = "away";
        sendActivity();
      } else {
        armAway();
      }
    }, wait);
  }
  function onInput() {
    const a = kit.activity;
    a.lastInput = Date.now();
    if (a.status === "away") {
      a.status = "online";
      sendActivity();
    }
    armAway();
  }
  for (const type of ["pointermove", "pointerdown", "keydown", "wheel", "touchstart", "focus"]) {
    window.addEventListener(type, onInput, { passive: true, capture: true });
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) onInput(); });
  window.addEventListener("pagehide", () => { if (kit.socket) kit.socket.close(1000, "page closed"); });
  return kit;
}

// Every widget's default export: join the shared connection, build the widget once per
// mount (its state lives on parentElement, since reruns call the export again with new
// data), hand it the latest options, and tear it down on unmount. `setup(kit, parent,
// options)` returns {update(options), destroy()}.
function mountWidget(component, name, setup) {
  const { data, parentElement, setTriggerValue } = component;
  const kit = presenceKit();
  kit.onTokenExpired = () => setTriggerValue("token_expired", Date.now());
  kit.configure(data.connection);
  const slot = `__presenceKit_${name}`;
  const widget = parentElement[slot] || (parentElement[slot] = setup(kit, parentElement, data.options));
  widget.update(data.options);
  return () => {
    widget.destroy();
    delete parentElement[slot];
  };
}

// Small helpers for widgets: text only, never markup.
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}
function colourFor(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 65% 45%)`;
}
function ago(unixSeconds) {
  if (!unixSeconds) return "";
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
function displayName(user) {
  return user.name || user.user;
}
// A name as an element: the name in a <bdi> (an isolated bidi run), then the id when
// another person in view shows the same name.
function nameElement(kit, user, fallback, className) {
  const { name, id } = kit.label(user, fallback);
  const node = el("span", className);
  node.append(el("bdi", null, name));
  if (id) node.append(el("span", "pk-id", ` (${id})`));
  return node;
}
// What two names are compared by (the server's display_names.name_key, near enough).
function nameKey(name) {
  return String(name).normalize("NFKC").toLowerCase().replace(/\s+/g, "");
}
function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}
