// Live cursors over a region of the page (the Streamlit element whose key is the
// region's id, e.g. st.container(key="canvas"), or the main block). Positions are
// normalised to the region so different window sizes agree; sent at most rate_hz times
// a second (max 20), coalesced to the latest, only while someone else is in the room
// and the tab is visible; received positions are interpolated so 20 Hz looks smooth;
// a cursor goes when its user leaves or after hide_after seconds without moving. An
// overlay mounted later draws where people are now (the kit keeps the room's latest
// frames). The layer is decoration (aria-hidden): the presence list says who is here.
// The animation loop runs only while there are cursors to draw.
const SMOOTHING_MS = 60;

export default (component) => mountWidget(component, "cursorOverlay", {
  className: "pk-cursor-overlay",
  kinds: ["cursors", "room"],
  // the room's cursors, and its head count: nobody else there, nothing is sent
  need: (w) => ({ rooms: { [w.options.room]: ["cursors"] }, presence: [{ room: w.options.room, limit: 0 }] }),
  build(w) { w.state = build(w.kit, w.options); },
  update(w) { w.state.options = w.options; },
  receive(w, message) { receive(w.state, w.kit, message); },
  destroy(w) { teardown(w.state); },
});

function regionElement(options) {
  return (options.region && document.querySelector(`.st-key-${CSS.escape(options.region)}`)) ||
    document.querySelector('[data-testid="stMainBlockContainer"]') || document.body;
}

function build(kit, options) {
  const layer = el("div", "pk-cursor-layer");
  layer.setAttribute("aria-hidden", "true"); // decoration: other people's pointers
  Object.assign(layer.style, { position: "fixed", left: "0", top: "0", width: "0", height: "0", pointerEvents: "none", zIndex: "999990" });
  document.body.appendChild(layer);
  const state = { layer, options, cursors: new Map(), pending: null, sentAt: 0, timer: null, visible: false, frame: 0 };

  const send = () => {
    state.timer = null;
    if (!state.pending) return;
    if (document.hidden || othersIn(kit, kit.view(state.options.room)) === 0) { state.pending = null; return; }
    kit.send(state.pending);
    state.pending = null;
    state.sentAt = performance.now();
  };
  const queue = (message) => {
    state.pending = message;
    if (state.timer) return; // a send is scheduled: it takes the latest position
    const interval = 1000 / Math.min(20, state.options.rate_hz);
    const wait = state.sentAt + interval - performance.now();
    if (wait <= 0) send();
    else state.timer = setTimeout(send, wait);
  };
  state.onMove = (event) => {
    const rect = regionElement(state.options).getBoundingClientRect();
    const x = (event.clientX - rect.left) / rect.width, y = (event.clientY - rect.top) / rect.height;
    const inside = x >= 0 && x <= 1 && y >= 0 && y <= 1 && rect.width > 0 && rect.height > 0;
    if (inside) {
      state.visible = true;
      queue({ t: "cursor", room: state.options.room, x, y, visible: true, ...(state.options.region ? { region: state.options.region } : {}) });
    } else if (state.visible) {
      state.visible = false;
      queue({ t: "cursor", room: state.options.room, x: 0, y: 0, visible: false, ...(state.options.region ? { region: state.options.region } : {}) });
    }
  };
  state.onHidden = () => {
    if (document.hidden && state.visible) {
      state.visible = false;
      state.pending = { t: "cursor", room: state.options.room, x: 0, y: 0, visible: false, ...(state.options.region ? { region: state.options.region } : {}) };
      kit.send(state.pending); // the last word before the tab stops sending
      state.pending = null;
    }
  };
  window.addEventListener("pointermove", state.onMove, { passive: true });
  document.addEventListener("visibilitychange", state.onHidden);
  for (const { move, at } of kit.room(options.room).cursors.values()) place(state, kit, move, at);
  return state;
}

function receive(state, kit, message) {
  if (message.room !== state.options.room) return;
  if (message.t === "cursors") {
    for (const move of message.moves) place(state, kit, move, performance.now());
  } else {
    for (const { move, at } of kit.room(message.room).cursors.values()) place(state, kit, move, at);
  }
}

function place(state, kit, move, at) {
  const [user, device, x, y, visible, region] = move;
  const key = `${user}/${device}`;
  if (kit.you && user === kit.you.user) return; // never draw our own pointer
  if (x !== null && x !== undefined && (region || null) !== (state.options.region || null)) return; // another overlay's region
  if (x === null || x === undefined || visible === false) { remove(state, key); return; }
  let cursor = state.cursors.get(key);
  if (!cursor && performance.now() - at > state.options.hide_after * 1000) return; // a kept frame too old to draw
  if (!cursor) {
    const node = el("div", "pk-cursor");
    node.dataset.user = user;
    const colour = colourFor(user);
    node.innerHTML = '<svg width="18" height="18" viewBox="0 0 18 18"><path d="M1 1 L1 15 L5 11 L8 17 L10.5 16 L7.5 10 L13 10 Z" stroke="white" stroke-width="1"/></svg>';
    node.querySelector("path").setAttribute("fill", colour);
    const label = nameElement(kit, user, null, "pk-cursor-label");
    // the layer is outside the component's shadow root, so styles are inline
    Object.assign(label.style, {
      background: colour, color: "white", font: "12px/1.4 var(--st-font, sans-serif)", padding: "1px 6px",
      borderRadius: "8px", marginLeft: "10px", whiteSpace: "nowrap", position: "relative", top: "-4px", unicodeBidi: "isolate",
    });
    node.appendChild(label);
    Object.assign(node.style, { position: "fixed", left: "0", top: "0", willChange: "transform" });
    state.layer.appendChild(node);
    cursor = { user, node, x, y, tx: x, ty: y };
    state.cursors.set(key, cursor);
    animating(state);
  }
  cursor.tx = x;
  cursor.ty = y;
  cursor.movedAt = at; // a cursor that stopped moving long ago is not drawn anew
  cursor.node.dataset.x = x;
  cursor.node.dataset.y = y;
}

function remove(state, key) {
  const cursor = state.cursors.get(key);
  if (cursor) { cursor.node.remove(); state.cursors.delete(key); }
}

// Run the animation loop while there are cursors; it stops by itself with the last one.
function animating(state) {
  if (state.frame) return;
  const tick = (now) => {
    animate(state, now);
    state.frame = state.cursors.size ? requestAnimationFrame(tick) : 0;
    if (!state.frame) state.lastFrame = 0;
  };
  state.frame = requestAnimationFrame(tick);
}

function animate(state, now) {
  const rect = regionElement(state.options).getBoundingClientRect();
  const dt = state.lastFrame ? now - state.lastFrame : 16;
  state.lastFrame = now;
  const blend = reducedMotion() ? 1 : 1 - Math.exp(-dt / SMOOTHING_MS); // reduced motion: no glide
  for (const [key, cursor] of state.cursors) {
    if (now - cursor.movedAt > state.options.hide_after * 1000) { remove(state, key); continue; }
    cursor.x += (cursor.tx - cursor.x) * blend;
    cursor.y += (cursor.ty - cursor.y) * blend;
    cursor.node.style.transform = `translate(${rect.left + cursor.x * rect.width}px, ${rect.top + cursor.y * rect.height}px)`;
  }
}

function teardown(state) {
  cancelAnimationFrame(state.frame);
  clearTimeout(state.timer);
  window.removeEventListener("pointermove", state.onMove);
  document.removeEventListener("visibilitychange", state.onHidden);
  state.layer.remove();
}
