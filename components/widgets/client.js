// The kit's browser side, shared by every widget on the page: one WebSocket per tab,
// one device per tab. The first widget that mounts creates it on `window`; the others
// reuse it. Each widget says what it shows (`kit.need`): presence views (a room's or the
// org's members, a page at a time) and parts of rooms; the socket asks the server for
// the union of those (a `watch`) and gets nothing else. Widgets subscribe to the message
// kinds they show, so a cursor frame never touches a presence list. Liveness is the
// socket itself (the server pings at the protocol level), so there is no heartbeat timer
// here; the timers are the away detector and a chat message's wait for its answer.
// The socket and the page-level listeners live while at least one widget is mounted:
// when the last one goes, so do they (and the kit on `window`).
// A room's chat is its messages by id, oldest first: the server sends the latest when
// the tab starts showing it (`history`), then new ones (`chat`); `kit.earlier` asks for
// the page below `floor`, the oldest message of the history the tab holds without a gap.
const MAX_MESSAGES = 1000; // per room, in the tab: a long-open tab does not grow forever
const PAGE = 50; // members a presence list asks for at a time
const MESSAGE_PAGE = 50; // messages "load earlier" asks for at a time
const ABOVE_EVERY_MESSAGE = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"; // the largest id: the page below it is the latest
const ANSWER_WAIT_MS = 20000; // a chat message without an answer by then may not have been sent
const TYPING_PAUSE_MS = 3000; // no key for this long: typing stops
const ANNOUNCE_GAP_MS = { chat: 3000, typing: 5000, reaction: 5000 }; // a screen reader hears at most one of each per gap
const ANNOUNCED_ITEMS = 100; // what one summary counts at most ("100 new messages from …")
// How often a typing notice with this ttl (seconds) is sent again while keys keep coming.
function typingRefreshMs(ttlSeconds) {
  return Math.min(2000, (ttlSeconds * 1000) / 2);
}

// Every word a widget shows or announces comes from `text(key, values)`: the page's
// language table (LANGUAGES: components/widgets/texts/*.json, put before this file by
// components.widget_texts), the app file's labels over it, English for a key a table
// lacks. A text is a template with {placeholders}, or plural forms chosen by
// Intl.PluralRules on `values.count`; values are filled in as text, numbers by
// Intl.NumberFormat, arrays of names by Intl.ListFormat ("Ana, Ben and Cy"). Names come
// in already isolated (kit.nameOf), so right-to-left text cannot spill into the words
// around them. The page's language lives on the shared kit (each widget's module has
// its own copy of this file).
const FALLBACK_LOCALE = "en";
// The language of a page: the app file's `locale`, else the first of the browser's
// languages that has a table, else English; as the browser's own tag when that is the
// same language (so de-AT formats numbers and times as in Austria).
function pageLocale(wanted, preferred) {
  const base = (tag) => String(tag).toLowerCase().split("-")[0];
  const known = (preferred || []).filter((tag) => Object.hasOwn(LANGUAGES, base(tag)));
  const chosen = wanted && Object.hasOwn(LANGUAGES, wanted) ? wanted : known.length ? base(known[0]) : FALLBACK_LOCALE;
  return known.find((tag) => base(tag) === chosen) || chosen;
}
function language(locale, labels) {
  const base = locale.toLowerCase().split("-")[0];
  return {
    locale,
    table: { ...LANGUAGES[FALLBACK_LOCALE], ...LANGUAGES[base], ...(labels || {}) },
    plural: new Intl.PluralRules(locale),
    number: new Intl.NumberFormat(locale),
    list: new Intl.ListFormat(locale, { type: "conjunction" }),
    relative: new Intl.RelativeTimeFormat(locale, { numeric: "auto" }),
  };
}
let englishLanguage = null;
function pageLanguage() {
  const kit = typeof window === "undefined" ? null : window.__presenceKit;
  return (kit && kit.language) || (englishLanguage ||= language(FALLBACK_LOCALE, null));
}
function text(key, values = {}) {
  const words = pageLanguage();
  let entry = words.table[key];
  if (entry !== null && typeof entry === "object") entry = entry[words.plural.select(values.count || 0)] ?? entry.other;
  return String(entry ?? "").replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? shown(words, values[name]) : whole));
}
function shown(words, value) {
  if (Array.isArray(value)) return words.list.format(value.map(String));
  if (typeof value === "number") return words.number.format(value);
  return String(value);
}
// Why the server did not send a chat message, in the page's words: by its reason
// (bridge.NotSent), else as the server said it.
function notSent(answer) {
  const key = `not_sent_${answer.reason}`;
  return typeof answer.reason === "string" && Object.hasOwn(pageLanguage().table, key) ? text(key) : String(answer.error);
}
// Several things said as one ("Ana reacted 👍 and Ben reacted 🎉").
function listed(items) {
  return pageLanguage().list.format(items.map(String));
}

function presenceKit() {
  if (window.__presenceKit) return window.__presenceKit;
  const kit = {
    config: null,
    deviceId: null,
    socket: null,
    connected: false,
    closedReason: "",
    problem: "", // why the socket is closed and not coming back at once, in words for the page
    you: null,
    tokens: new Map(), // mount key -> the page token its render call minted
    freshToken: null, // the last token the server sent this socket (for reconnecting)
    needs: new Map(), // mount key -> what that widget shows
    sentWatch: "",
    views: new Map(), // "room|limit" -> {room, limit, counts, total, members: Map, complete}
    users: new Map(), // everyone this tab knows from its views, by user id
    names: new Map(), // user id -> display name, from whatever named them
    nameKeys: new Map(), // name key -> user ids showing that name (to tell look-alikes apart)
    rooms: {},
    refused: new Set(), // rooms the server would not show this page
    broker: { connected: true, error: "" },
    listeners: new Map(), // fn -> Set of message kinds (null: all)
    sending: new Map(), // nonce -> {resolve, timer}: chat messages waiting for the server's answer
    nonces: 0,
    tokenExpired: new Map(), // mount key -> ask Python for fresh tokens (set at mount, deleted at release)
    spoken: new Map(), // "kind:room" -> {words, at}: what a live region said last (see announcer)
    language: null, // the page's words (see text), from the app file's locale and labels
    wording: "", // the locale and labels it was made from
    retryDelay: 250,
    retryTimer: null,
    activity: { status: "online", lastInput: Date.now(), awayTimer: null },
  };
  window.__presenceKit = kit;

  const storageKey = () => `presence-kit:${kit.config.org}:${kit.config.user}:device`;
  const newDeviceId = () => "tab-" + Math.random().toString(36).slice(2, 10) + Date.now().toString(36).slice(-4);
  const tokens = () => [...new Set([...kit.tokens.values(), ...(kit.freshToken ? [kit.freshToken] : [])])];

  // A widget mounted or re-rendered with the page's connection data (a fresh token);
  // `onTokenExpired` comes with the mount only, and goes with kit.release.
  kit.configure = (key, config, onTokenExpired) => {
    kit.closing = false; // a widget came back before the last one's teardown ran
    const first = kit.config === null;
    const changedUser = !first && (kit.config.user !== config.user || kit.config.org !== config.org);
    kit.config = { ...(kit.config || {}), ...config };
    const previous = kit.tokens.get(key);
    kit.tokens.set(key, config.token);
    if (onTokenExpired) kit.tokenExpired.set(key, onTokenExpired);
    if (first || changedUser) {
      kit.tokens = new Map([[key, config.token]]);
      kit.freshToken = null;
      kit.deviceId = sessionStorage.getItem(storageKey()) || newDeviceId();
      sessionStorage.setItem(storageKey(), kit.deviceId);
      if (kit.socket) kit.socket.close(1000, "identity changed");
      else connect();
    } else if (!kit.connected && kit.closedReason === "token") {
      connect(); // a rerun brought fresh tokens
    } else if (previous !== config.token && kit.connected) {
      scheduleAuth(); // the page was rendered again
    }
    const wording = JSON.stringify([config.locale, config.labels]);
    if (wording !== kit.wording) { // the app file's locale and labels (the same for every widget of a page)
      kit.wording = wording;
      kit.language = language(pageLocale(config.locale, navigator.languages || [navigator.language]), config.labels);
    }
    kit.activity.awayAfterMs = (config.awayAfter || 300) * 1000;
    armAway();
  };

  // What one widget shows: {presence: [{room, limit}], rooms: {room: [parts]}}.
  kit.need = (key, need) => { kit.needs.set(key, need); scheduleWatch(); };
  kit.release = (key) => {
    kit.needs.delete(key);
    kit.tokens.delete(key);
    kit.tokenExpired.delete(key);
    scheduleWatch();
    if (kit.needs.size) return;
    // The last widget is gone: so are the page's socket, listeners and timers. After the
    // widgets of this render pass (a widget that moves is unmounted, then mounted again).
    kit.closing = true;
    queueMicrotask(() => { if (kit.closing && !kit.needs.size) end(); });
  };
  function end() {
    const socket = kit.socket;
    kit.socket = null;
    kit.connected = false;
    clearTimeout(kit.retryTimer);
    clearTimeout(kit.activity.awayTimer);
    for (const nonce of [...kit.sending.keys()]) answered(nonce, { error: text("dropped_before_answer") });
    for (const [target, type, fn, options] of pageListeners) target.removeEventListener(type, fn, options);
    if (window.__presenceKit === kit) delete window.__presenceKit; // the next widget starts afresh
    if (socket) socket.close(1000, "no widget left");
  }
  let authQueued = false;
  function scheduleAuth() {
    if (authQueued) return;
    authQueued = true;
    queueMicrotask(() => { // every widget of a rerun brings a token: one auth for them all
      authQueued = false;
      kit.send({ t: "auth", tokens: tokens() });
    });
  }
  function watch() {
    const views = new Map(); // one per scope: the largest page a widget asks of it
    const rooms = {};
    const history = {}; // per room: the most messages a widget shows at join
    for (const need of kit.needs.values()) {
      for (const view of need.presence || []) {
        const held = views.get(view.room);
        if (!held || held.limit < view.limit) views.set(view.room, view);
      }
      for (const [room, parts] of Object.entries(need.rooms || {})) rooms[room] = [...new Set([...(rooms[room] || []), ...parts])];
      for (const [room, count] of Object.entries(need.history || {})) history[room] = Math.max(history[room] || 0, count);
    }
    return { presence: [...views.values()], rooms, history };
  }
  let watchQueued = false;
  function scheduleWatch() {
    if (watchQueued) return;
    watchQueued = true;
    queueMicrotask(() => { // widgets mounting together are one watch
      watchQueued = false;
      const now = watch();
      const json = JSON.stringify(now);
      if (kit.connected && json !== kit.sentWatch && kit.send({ t: "watch", ...now })) kit.sentWatch = json;
    });
  }

  // Ask the page to show where `user` is (a presence list's click): a field presence
  // widget scrolls to the field they edit. `location` ({room, field}) when known.
  kit.locate = (user, location) => emit({ t: "locate", user, location: location || null });

  kit.subscribe = (fn, kinds) => {
    kit.listeners.set(fn, kinds ? new Set(kinds) : null);
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
    for (const [fn, kinds] of kit.listeners) {
      if (kinds && !kinds.has(message.t)) continue;
      try { fn(message); } catch (err) { console.error("presence-kit widget failed", err); }
    }
  };

  // floor: the oldest id of the history held without a gap (null: none yet); more:
  // earlier messages may exist; loading: an earlier page is asked for; unavailable: the
  // server could not read its history store; kept: how many messages the tab keeps.
  const room = (name) => (kit.rooms[name] ||= {
    typists: [], receipts: {}, messages: [], cursors: new Map(), fields: [],
    floor: null, more: false, loading: false, unavailable: false, kept: MAX_MESSAGES,
  });
  kit.room = room;
  // Add messages to a room, each id once, keeping id order; trim the oldest past `kept`.
  const addMessages = (held, incoming) => {
    const known = new Set(held.messages.map((m) => m.id));
    const fresh = incoming.filter((m) => !known.has(m.id));
    for (const m of fresh) learnName(m.user, m.name);
    if (!fresh.length) return false;
    held.messages.push(...fresh);
    held.messages.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (held.messages.length > held.kept) {
      held.messages.splice(0, held.messages.length - held.kept);
      held.floor = held.messages[0].id;
      held.more = true;
    }
    return true;
  };
  const receiveHistory = (message) => {
    const held = room(message.room);
    held.kept = Math.max(held.kept, held.messages.length + message.messages.length);
    addMessages(held, message.messages);
    held.unavailable = Boolean(message.unavailable);
    const oldest = message.messages.length ? message.messages[0].id : null;
    if (message.before === null) { // the latest messages, at join (again after a resync)
      if (held.floor === null || (oldest !== null && oldest <= held.floor) || !held.messages.length) {
        held.floor = oldest;
        held.more = message.more;
      }
    } else { // the page below `before` that this tab asked for
      held.loading = false;
      if (oldest !== null && (held.floor === null || oldest < held.floor)) held.floor = oldest;
      held.more = message.more;
    }
  };
  // Ask for the page of a room's chat below what the tab holds ("load earlier messages").
  kit.earlier = (roomName) => {
    const held = room(roomName);
    if (held.loading || !held.more) return false;
    const before = held.floor || (held.messages[0] && held.messages[0].id) || ABOVE_EVERY_MESSAGE;
    if (!kit.send({ t: "earlier", room: roomName, before, limit: MESSAGE_PAGE })) return false;
    held.loading = true;
    return true;
  };
  // Send a chat message; resolves to {id, stored} once the server stored and published
  // it, or to {error} (in words) when it did not or may not have.
  kit.sendChat = (roomName, words) => new Promise((resolve) => {
    const nonce = `${Date.now().toString(36)}-${(kit.nonces += 1)}`;
    if (!kit.send({ t: "chat", room: roomName, text: words, nonce })) {
      resolve({ error: text("not_sent_offline") });
      return;
    }
    const timer = setTimeout(() => answered(nonce, { error: text("no_answer") }), ANSWER_WAIT_MS);
    kit.sending.set(nonce, { resolve, timer });
  });
  const answered = (nonce, result) => {
    const waiting = kit.sending.get(nonce);
    if (!waiting) return;
    kit.sending.delete(nonce);
    clearTimeout(waiting.timer);
    waiting.resolve(result);
  };
  // The presence view of a room (null: the org) this tab holds: one per scope, with the
  // largest page its widgets asked for (each shows as many of its members as it wants).
  kit.view = (roomName) => [...kit.views.values()].find((view) => view.room === roomName) ||
    { room: roomName, limit: 0, counts: { online: 0, away: 0, offline: 0 }, total: 0, members: new Map(), complete: false };

  // The name to show for `user`: the signed name for this tab's own user, the name the
  // server last sent for them, else `fallback` (a chat message's), else the id. `id` is
  // set when someone else this tab knows shows the same name, so nobody passes for
  // somebody else.
  kit.label = (user, fallback) => {
    const name = kit.you && user === kit.you.user ? kit.you.name : kit.names.get(user) || fallback || user;
    const holders = kit.nameKeys.get(nameKey(name));
    const ambiguous = name !== user && holders && (holders.size > 1 || !holders.has(user));
    return { name, id: ambiguous ? user : null };
  };
  // The same as text for a sentence ("Ana is typing…"): the name isolated in FSI ... PDI
  // so right-to-left text cannot spill into the words around it.
  kit.nameOf = (user, fallback) => {
    const { name, id } = kit.label(user, fallback);
    return `\u2068${name}\u2069${id ? text("user_id", { id }) : ""}`;
  };
  const learnName = (user, name) => {
    if (!name || kit.names.get(user) === name) return;
    const old = kit.names.get(user);
    if (old) {
      const holders = kit.nameKeys.get(nameKey(old));
      if (holders) { holders.delete(user); if (!holders.size) kit.nameKeys.delete(nameKey(old)); }
    }
    kit.names.set(user, name);
    const key = nameKey(name);
    kit.nameKeys.set(key, (kit.nameKeys.get(key) || new Set()).add(user));
  };
  const learnNames = (names) => { for (const [user, name] of Object.entries(names || {})) learnName(user, name); };
  const inViews = (user) => [...kit.views.values()].some((view) => view.members.has(user));
  const setMember = (view, member) => {
    view.members.set(member.user, member);
    kit.users.set(member.user, member);
    learnName(member.user, member.name);
  };
  const dropMember = (view, user) => {
    view.members.delete(user);
    if (!inViews(user)) kit.users.delete(user);
  };

  function apply(message) {
    switch (message.t) {
      case "welcome":
        kit.you = { user: message.user, device: message.device, name: message.name };
        break;
      case "people": {
        const key = `${message.room}|${message.limit}`;
        const old = [...kit.views.entries()].filter(([, held]) => held.room === message.room); // a page of another size
        for (const [heldKey] of old) kit.views.delete(heldKey);
        const view = { room: message.room, limit: message.limit, counts: message.counts, total: message.total, members: new Map(), complete: message.complete };
        kit.views.set(key, view);
        for (const member of message.members) setMember(view, member);
        for (const [, held] of old) for (const user of held.members.keys()) if (!view.members.has(user) && !inViews(user)) kit.users.delete(user);
        break;
      }
      case "people_batch": // the deltas of several views, one tick
        for (const delta of message.deltas) apply(delta);
        return;
      case "people_delta": {
        const view = kit.views.get(`${message.room}|${message.limit}`);
        if (!view) return;
        view.counts = message.counts;
        view.total = message.total;
        for (const member of message.upsert) setMember(view, member);
        for (const user of message.remove) dropMember(view, user);
        break;
      }
      case "room": {
        const held = room(message.room);
        learnNames(message.names);
        if (message.typists) held.typists = message.typists;
        if (message.receipts) held.receipts = message.receipts;
        if (message.cursors) held.cursors = new Map(message.cursors.map((move) => [`${move[0]}/${move[1]}`, { move, at: performance.now() }]));
        if (message.fields) held.fields = message.fields;
        for (const e of message.fields || []) learnName(e.user, e.name);
        break;
      }
      case "fields": // who edits which field of the room, and whom they follow: the whole state
        for (const e of message.editors) learnName(e.user, e.name);
        room(message.room).fields = message.editors;
        break;
      case "history":
        receiveHistory(message);
        break;
      case "typing":
        learnNames(message.names);
        room(message.room).typists = message.typists;
        break;
      case "chat":
        if (!addMessages(room(message.message.room), [message.message])) return;
        break;
      case "chat_ack":
        if (message.stored) room(message.room).unavailable = false; // the store took it: it is back
        answered(message.nonce, message.error ? { error: notSent(message) } : { id: message.id, stored: message.stored });
        break;
      case "receipt":
        learnName(message.user, message.name);
        room(message.room).receipts[message.user] = message.up_to;
        break;
      case "reaction":
        learnName(message.user, message.name);
        break;
      case "cursors": { // kept per room (with when), so an overlay mounted later draws where people are
        const cursors = room(message.room).cursors;
        const at = performance.now();
        for (const move of message.moves) {
          if (move[6]) learnName(move[0], move[6]);
          if (move[2] === null) cursors.delete(`${move[0]}/${move[1]}`);
          else cursors.set(`${move[0]}/${move[1]}`, { move, at });
        }
        break;
      }
      case "refused":
        kit.refused.add(message.room);
        kit.problem = text("room_refused", { room: message.room });
        break;
      case "broker":
        kit.broker = { connected: message.connected, error: message.error, url: message.url };
        break;
      case "token":
        kit.freshToken = message.token;
        return; // nothing for widgets to show
    }
    emit(message);
  }

  // Close codes the server explains (components/tab_admission.py), and what to say.
  const REFUSED = { 4403: { retry: 0 }, 4429: { retry: 15000 }, 4431: { retry: 30000 } }; // words: text("refused_<code>")

  function connect() {
    clearTimeout(kit.retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${kit.config.wsPath}`);
    kit.socket = socket;
    socket.onopen = () => {
      // who we are and what we show go in the first frame, never in the URL
      const now = watch();
      socket.send(JSON.stringify({ t: "hello", tokens: tokens(), device: kit.deviceId, watch: now }));
      kit.sentWatch = JSON.stringify(now);
      kit.connected = true;
      kit.closedReason = "";
      kit.problem = "";
      kit.retryDelay = 250;
      sendActivity();
      emit({ t: "connection", connected: true });
    };
    socket.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (err) { console.error("presence-kit: bad frame", err); return; }
      for (const message of Array.isArray(data) ? data : [data]) { // messages queued together come as one array
        try { apply(message); } catch (err) { console.error("presence-kit: bad message", err); }
      }
    };
    socket.onclose = (event) => {
      if (kit.socket !== socket) return;
      kit.socket = null;
      kit.connected = false;
      for (const nonce of [...kit.sending.keys()]) {
        answered(nonce, { error: text("dropped_before_answer") });
      }
      for (const held of Object.values(kit.rooms)) held.loading = false; // the new socket may be asked again
      const refused = REFUSED[event.code];
      kit.problem = refused ? text(`refused_${event.code}`) : "";
      emit({ t: "connection", connected: false, code: event.code });
      if (event.code === 4409) { // our device id is live in another tab (a duplicated tab)
        kit.deviceId = newDeviceId();
        sessionStorage.setItem(storageKey(), kit.deviceId);
        connect();
      } else if (event.code === 4401) { // tokens expired or refused: ask Python for new ones
        kit.closedReason = "token";
        kit.freshToken = null;
        for (const ask of kit.tokenExpired.values()) { ask(); break; } // one rerun renders them all
      } else if (refused) {
        if (refused.retry) kit.retryTimer = setTimeout(connect, refused.retry);
      } else if (event.code !== 1000 || event.reason === "identity changed") { // 1000: we closed it (pagehide, identity)
        kit.retryTimer = setTimeout(connect, kit.retryDelay);
        kit.retryDelay = Math.min(kit.retryDelay * 2, 5000);
      }
    };
  }

  // -- typing: refreshed while keys keep coming, stopped on a pause, send or blur ------
  // A notice lives `ttl` seconds at its receivers: it is refreshed at half of that (at
  // most every 2 s), so one refresh may be late or lost before it flickers away.
  kit.typingSender = (roomName, ttlSeconds) => {
    const refreshMs = typingRefreshMs(ttlSeconds);
    let active = false, sentAt = 0, pauseTimer = null;
    const stop = () => {
      clearTimeout(pauseTimer);
      if (active) kit.send({ t: "typing", room: roomName, active: false });
      active = false;
    };
    const keystroke = () => {
      const now = Date.now();
      if (!active || now - sentAt >= refreshMs) {
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
  // A page put in the back/forward cache closes its socket (1000: not retried); restored
  // from it (`pageshow` with persisted), it connects again as the same device.
  const onPageHide = () => {
    const socket = kit.socket;
    if (!socket) return;
    kit.socket = null; // its close event may only come after the page is restored
    kit.connected = false;
    socket.close(1000, "page closed");
  };
  const onPageShow = (event) => {
    if (event.persisted && !kit.socket && kit.config && kit.needs.size) connect();
  };
  const pageListeners = [
    ...["pointermove", "pointerdown", "keydown", "wheel", "touchstart", "focus"].map((type) => [window, type, onInput, { passive: true, capture: true }]),
    [document, "visibilitychange", () => { if (!document.hidden) onInput(); }, false],
    [window, "pagehide", onPageHide, false],
    [window, "pageshow", onPageShow, false],
  ];
  for (const [target, type, fn, options] of pageListeners) target.addEventListener(type, fn, options);
  return kit;
}

// The widget base, every widget's default export: `mountWidget(component, name, widget)`
// joins the shared connection, builds the widget once per mount (its instance lives on
// parentElement, since reruns call the export again with new data), hands it the latest
// options, and tears it down on unmount. `widget` is
//   {className, kinds, need(w), build(w), update(w, previous), receive(w, message), destroy(w)}
// where `kinds` are the message kinds it shows (it receives no other), `need(w)` says
// what it shows (kit.need; `w.ask()` says it again after the widget changed it), and `w`
// is the instance: {kit, key, root, options, ask, listen, every, onDestroy} plus
// the widget's own state. Listeners, timers and subscriptions made through `w` end with
// it, and the kit forgets what it showed.
function mountWidget(component, name, widget) {
  const { data, parentElement, setTriggerValue } = component;
  const slot = `__presenceKit_${name}`;
  let instance = parentElement[slot];
  if (!instance) {
    const kit = presenceKit();
    const key = `${name}-${Math.random().toString(36).slice(2, 10)}`;
    kit.configure(key, data.connection, () => setTriggerValue("token_expired", Date.now()));
    instance = parentElement[slot] = widgetInstance(kit, key, parentElement, widget, data.options);
  } else {
    instance.w.kit.configure(instance.w.key, data.connection);
  }
  instance.update(data.options);
  return () => {
    if (parentElement[slot] !== instance) return;
    delete parentElement[slot];
    instance.destroy();
  };
}

function widgetInstance(kit, key, parentElement, widget, options) {
  const cleanups = [];
  const root = el("div", `pk-widget ${widget.className}`);
  root.lang = pageLanguage().locale; // a screen reader reads the widget's words in their language
  parentElement.appendChild(root);
  let needed = "";
  const w = {
    kit, key, root, options,
    ask() {
      const need = widget.need(w);
      const json = JSON.stringify(need);
      if (json !== needed) { needed = json; kit.need(key, need); }
    },
    listen(target, type, fn, listenOptions) {
      target.addEventListener(type, fn, listenOptions);
      cleanups.push(() => target.removeEventListener(type, fn, listenOptions));
    },
    every(ms, fn) { const timer = setInterval(fn, ms); cleanups.push(() => clearInterval(timer)); },
    onDestroy(fn) { cleanups.push(fn); },
  };
  widget.build(w);
  cleanups.push(kit.subscribe((message) => widget.receive(w, message), widget.kinds));
  return {
    w,
    update(next) {
      const previous = w.options;
      w.options = next;
      widget.update(w, previous);
      w.ask();
    },
    destroy() {
      if (widget.destroy) widget.destroy(w);
      for (const fn of cleanups.reverse()) fn();
      root.remove();
      kit.release(key);
    },
  };
}

// -- DOM writes that touch the DOM only when something changed (each write is a mutation
// a screen reader or an observer sees) ------------------------------------------------
function setText(node, value) {
  if (node.textContent !== value) node.textContent = value;
}
function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}
function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, String(value));
  }
}
function setData(node, name, value) {
  if (node.dataset[name] !== String(value)) node.dataset[name] = String(value);
}
function setClass(node, className) {
  if (node.className !== className) node.className = className;
}

// -- live regions ---------------------------------------------------------------------
// A visually hidden polite live region in `w.root` that speaks about `kind` (chat,
// typing, reaction) of the widget's room at most once per ANNOUNCE_GAP_MS[kind]: what
// `say(item)` collects in between is spoken together, as `compose(items)` words it (the
// first item at once, then one summary per gap), so a busy room is not a flood. At most
// ANNOUNCED_ITEMS are kept for one summary. Words another widget of the page just spoke
// about the same room (a typing indicator beside a chat panel) are not spoken twice.
function announcer(w, kind, compose) {
  const gapMs = ANNOUNCE_GAP_MS[kind];
  const node = el("div", "pk-sr");
  node.setAttribute("role", "status");
  w.root.appendChild(node);
  let items = [], spokeAt = -Infinity, timer = null;
  const speak = () => {
    timer = null;
    if (!items.length) return;
    const words = compose(items);
    const channel = `${kind}:${w.options.room}`;
    const last = w.kit.spoken.get(channel);
    items = [];
    spokeAt = performance.now();
    if (last && last.words === words && spokeAt - last.at < gapMs) return;
    w.kit.spoken.set(channel, { words, at: spokeAt });
    node.textContent = words;
  };
  w.onDestroy(() => clearTimeout(timer));
  return (item) => {
    if (items.length < ANNOUNCED_ITEMS) items.push(item);
    if (timer) return;
    const wait = spokeAt + gapMs - performance.now();
    if (wait <= 0) speak();
    else timer = setTimeout(speak, wait);
  };
}

// -- renderers shared by the widgets that show the same thing --------------------------
// The typing line of a room: "Ana is typing…", never this tab's own user; `data-typists`
// holds their ids. Someone starting to type is announced through `say` (an announcer).
function renderTyping(kit, node, roomName, say) {
  const you = kit.you ? kit.you.user : null;
  const typists = kit.room(roomName).typists.filter((user) => user !== you);
  const ids = typists.join(" ");
  const words = typingText(typists.map((user) => kit.nameOf(user)));
  if (node.dataset.typists === ids && node.textContent === words) return;
  const before = new Set((node.dataset.typists || "").split(" ").filter(Boolean));
  node.dataset.typists = ids;
  setText(node, words);
  if (say && typists.some((user) => !before.has(user))) say(words);
}
// "Seen by Ana, Ben" (or "Seen by 5 people" above `collapseAbove`) for readers `users`;
// `latest`: the line of a room's latest message (read receipts without a chat panel).
function renderSeen(kit, node, users, collapseAbove, latest) {
  const names = users.map((user) => kit.nameOf(user));
  setData(node, "count", users.length);
  setData(node, "seen", users.join(" "));
  setText(node, latest && !names.length ? text("latest_not_seen")
    : names.length > collapseAbove ? text(latest ? "latest_seen_by_count" : "seen_by_count", { count: names.length })
      : text(latest ? "latest_seen_by" : "seen_by", { names }));
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
// Whether the person asked for less motion (widgets then snap, fade or scroll at once).
function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}
// A person's colour, from their id: the hue varies, the lightness does not, so white
// initials and name labels on it keep a contrast of at least 4.5:1 in every theme.
function colourFor(id) {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `lch(40% 50 ${hash % 360})`;
}
// How long ago, in the page's language ("5 minutes ago", "vor 5 Minuten").
function ago(unixSeconds) {
  if (!unixSeconds) return "";
  const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (seconds < 60) return text("just_now");
  const { relative } = pageLanguage();
  if (seconds < 3600) return relative.format(-Math.floor(seconds / 60), "minute");
  if (seconds < 86400) return relative.format(-Math.floor(seconds / 3600), "hour");
  return relative.format(-Math.floor(seconds / 86400), "day");
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
  if (id) node.append(el("span", "pk-id", text("user_id", { id })));
  return node;
}
// What two names are compared by (the server's display_names.name_key, near enough).
function nameKey(name) {
  return String(name).normalize("NFKC").toLowerCase().replace(/\s+/g, "");
}
// Live people in a room other than this tab's user, from a presence view's counts.
function othersIn(kit, view) {
  return Math.max(0, view.counts.online + view.counts.away - 1);
}
function typingText(names) {
  if (names.length === 0) return "";
  return names.length <= 2 ? text("typing", { names, count: names.length }) : text("typing_many", { count: names.length });
}
