// Joey Chat web page: protocol v1 over one reconnecting WebSocket (docs/protocol.md).
//
// Invariant that makes reconnects lossless: the view shows exactly the stream frames with
// seq <= state.appliedSeq. A resume sends last_seq = appliedSeq, so the server replays only the
// frames after it. A reload starts with an empty view and appliedSeq = 0, so the whole in-flight
// reply is replayed; completed turns come from the session frame's history either way.

import { ReconnectingSocket } from "./socket.js";
import { clearSession, loadSession, saveSession } from "./store.js";
import { ChatView } from "./view.js";

const PROTOCOL = 1;
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), newChat: $("new-chat"), banner: $("banner"), bannerText: $("banner-text"),
  bannerAction: $("banner-action"), log: $("messages"), empty: $("empty"), jump: $("jump"),
  typing: $("typing"), form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  counter: $("counter"), hint: $("hint"),
};
const HINT = ui.hint.textContent;
const view = new ChatView({ log: ui.log, empty: ui.empty, jump: ui.jump });

const state = {
  stored: loadSession(), // {session_id, token, last_seq} or null
  ready: false, // the current socket carries a session
  appliedSeq: 0, // highest seq applied to the view
  sentLastSeq: 0, // the last_seq of the resume in progress
  reply: null, // the reply being streamed: {messageId, text, handle}
  awaiting: false, // a message is out and its reply has not ended
  pending: null, // the sent message not yet acknowledged: {id, text, handle}
  queue: [], // messages waiting to be sent, oldest first
  holdUntil: 0, // rate limited: send nothing before this time (ms)
  maxChars: 1000,
  everReady: false,
  takenOver: false, // another tab has the session: no automatic reconnects
  stopped: false, // no connection until the user acts (taken over, or a newer protocol)
  restarting: false,
};

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
const socket = new ReconnectingSocket(wsUrl);

// --- helpers ------------------------------------------------------------------------------------
function newId() {
  if (crypto.randomUUID) {
    try { return crypto.randomUUID(); } catch { /* insecure context */ }
  }
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

const charCount = (text) => Array.from(text).length; // code points, as the server counts

function persist() {
  if (state.stored) {
    state.stored.last_seq = state.appliedSeq;
    saveSession(state.stored);
  }
}

/** Accept a frame's seq once: frames at or below what the view already shows are replays. */
function fresh(frame) {
  if (typeof frame.seq !== "number") return true;
  if (frame.seq <= state.appliedSeq) return false;
  state.appliedSeq = frame.seq;
  return true;
}

function setConnection(value) {
  document.documentElement.dataset.connection = value;
}

// --- banner -------------------------------------------------------------------------------------
let bannerTimer = null;

function showBanner(text, action) {
  ui.bannerText.textContent = text;
  ui.bannerAction.hidden = !action;
  if (action) {
    ui.bannerAction.textContent = action.label;
    ui.bannerAction.onclick = action.onClick;
  }
  ui.banner.hidden = false;
}

function hideBanner() {
  clearInterval(bannerTimer);
  bannerTimer = null;
  ui.banner.hidden = true;
}

function showReconnecting() {
  clearInterval(bannerTimer);
  const render = () => {
    if (state.stopped) return;
    const left = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    let text;
    if (!navigator.onLine) text = "You're offline. Waiting for the network…";
    else if (socket.state === "connecting" || socket.state === "open") text = state.everReady ? "Reconnecting…" : "Connecting to Joey…";
    else if (state.restarting) text = `Joey's server is restarting. Reconnecting in ${left} s…`;
    else text = left > 0 ? `Connection lost. Reconnecting in ${left} s…` : "Reconnecting…";
    showBanner(text, socket.state === "waiting" ? { label: "Retry now", onClick: () => socket.reconnectNow() } : null);
  };
  render();
  bannerTimer = setInterval(render, 1000);
}

// --- UI state -----------------------------------------------------------------------------------
function refresh() {
  const connected = state.ready && socket.state === "open";
  const text = ui.input.value;
  const count = charCount(text);
  const over = count > state.maxChars;
  ui.counter.textContent = `${count} / ${state.maxChars}`;
  ui.counter.classList.toggle("counter--warn", count > state.maxChars * 0.9 && !over);
  ui.counter.classList.toggle("counter--over", over);
  ui.input.setAttribute("aria-invalid", over ? "true" : "false");
  ui.hint.textContent = over ? `Too long: ${count - state.maxChars} characters over the limit` : HINT;
  ui.hint.classList.toggle("composer__hint--error", over);

  // Sending is always possible (while Joey answers or the line is down, it waits in a queue).
  ui.send.disabled = over || !text.trim() || state.stopped;
  ui.stop.hidden = !state.awaiting;
  ui.stop.disabled = !connected;
  ui.newChat.disabled = !connected;
  ui.typing.hidden = !state.awaiting;
  ui.form.classList.toggle("composer__form--over", over);
  const lines = text.split("\n").length;
  ui.input.rows = Math.min(6, Math.max(1, lines)); // fallback where field-sizing is unsupported

  let status;
  if (state.stopped) status = state.takenOver ? "Open in another tab" : "Offline";
  else if (!connected) status = state.everReady ? "Reconnecting…" : "Connecting…";
  else if (state.awaiting) status = "typing…";
  else status = "Online";
  ui.status.textContent = status;
  ui.status.dataset.state = connected ? (state.awaiting ? "typing" : "online") : "offline";
  setConnection(connected ? "online" : state.stopped ? "stopped" : socket.state === "waiting" ? "offline" : "connecting");
}

// --- outgoing messages --------------------------------------------------------------------------
// One message at a time (protocol: busy, not a queue): what the user sends while Joey answers,
// or while the connection is down, waits here and goes out after the reply_end.

function editAction(item) {
  return {
    label: "Edit",
    onClick: () => {
      state.queue = state.queue.filter((q) => q !== item);
      view.remove(item.handle);
      ui.input.value = ui.input.value ? `${item.text}\n${ui.input.value}` : item.text;
      refresh();
      ui.input.focus();
    },
  };
}

function markFailed(item) {
  view.setState(item.handle, "failed");
  view.setMeta(item.handle, "Not sent", editAction(item));
}

function flush() {
  if (!state.ready || state.awaiting || state.pending || !state.queue.length) return;
  if (Date.now() < state.holdUntil) return; // rate limited: a timer calls flush() again
  const item = state.queue.shift();
  state.pending = item;
  state.awaiting = true;
  view.setState(item.handle, "sending");
  view.setMeta(item.handle, "");
  socket.send({ type: "message", id: item.id, text: item.text }); // a resend keeps its id: never answered twice
  refresh();
}

function ackPending(messageId) {
  if (state.pending && state.pending.id === messageId) {
    view.setState(state.pending.handle, "done");
    view.setMeta(state.pending.handle, "");
    state.pending = null;
  }
}

function submit() {
  const text = ui.input.value;
  if (!text.trim() || state.stopped) return;
  if (charCount(text) > state.maxChars) {
    ui.counter.classList.remove("counter--shake");
    void ui.counter.offsetWidth; // restart the animation
    ui.counter.classList.add("counter--shake");
    return;
  }
  const id = newId();
  const item = { id, text, handle: view.addMessage("user", text, id, "queued") };
  state.queue.push(item);
  ui.input.value = "";
  flush();
  if (state.queue.includes(item)) view.setMeta(item.handle, state.ready ? "Waiting for Joey" : "Waiting for the connection");
  refresh();
}

// --- incoming frames ----------------------------------------------------------------------------
function startReply(messageId) {
  if (state.reply) view.setState(state.reply.handle, "done");
  state.reply = { messageId, text: "", handle: view.addMessage("joey", "", messageId, "streaming") };
  state.awaiting = true;
  view.setBusy(true);
}

function renderedKeys() {
  const keys = [];
  for (const row of ui.log.querySelectorAll(".msg")) {
    if (row.dataset.state === "done") keys.push(`${row.dataset.role}:${row.dataset.messageId}`);
  }
  return keys;
}

function onSession(frame) {
  if (typeof frame.protocol === "number" && frame.protocol > PROTOCOL) {
    state.stopped = true;
    socket.stop();
    showBanner("Joey's server was updated. Reload the page to keep chatting.",
               { label: "Reload", onClick: () => location.reload() });
    refresh();
    return;
  }
  const resumedHere = frame.resumed && state.stored && state.stored.session_id === frame.session_id;
  state.stored = { session_id: frame.session_id, token: frame.token, last_seq: 0 };
  state.maxChars = frame.limits?.max_message_chars ?? state.maxChars;
  const history = Array.isArray(frame.history) ? frame.history : [];
  const inFlight = frame.in_flight || null;

  // Keep the partial bubble only if the server will send exactly what it is missing.
  const keep = Boolean(resumedHere && inFlight && state.reply && state.reply.messageId === inFlight.message_id
    && inFlight.seq <= state.sentLastSeq);
  if (inFlight && inFlight.seq <= state.sentLastSeq && !keep) {
    // We claimed to have seen this reply's start but hold no bubble for it: ask again from 0.
    if (state.reply) view.remove(state.reply.handle);
    state.reply = null;
    state.appliedSeq = 0;
    socket.drop("resync");
    return;
  }
  if (state.reply && !keep) {
    view.remove(state.reply.handle);
    state.reply = null;
  }
  // Messages not yet answered go back in the queue (same ids), unless the server has them.
  const historyKeys = history.map((h) => `${h.role === "joey" ? "joey" : "user"}:${h.message_id}`);
  if (state.pending) {
    if (!historyKeys.includes(`user:${state.pending.id}`)) state.queue.unshift(state.pending);
    else view.remove(state.pending.handle); // the server has it: history shows it
    state.pending = null;
  }
  for (const item of state.queue) view.remove(item.handle);

  // Completed turns: history is authoritative. Re-render only if the view disagrees with it, so
  // notes like "Stopped" survive a reconnect that changed nothing.
  const shown = renderedKeys();
  const same = shown.length === historyKeys.length && shown.every((k, i) => k === historyKeys[i]);
  if (!same) {
    const kept = keep ? state.reply.text : null;
    view.clear();
    for (const h of history) view.addMessage(h.role === "joey" ? "joey" : "user", String(h.text ?? ""), h.message_id, "done");
    if (keep) state.reply.handle = view.addMessage("joey", kept, inFlight.message_id, "streaming");
  }
  for (const item of state.queue) item.handle = view.addMessage("user", item.text, item.id, "queued");

  // After a server restart the session's last_seq can be below ours: count from the server's.
  state.appliedSeq = inFlight ? state.sentLastSeq : Number(frame.last_seq) || 0;
  state.awaiting = Boolean(inFlight);
  view.setBusy(Boolean(inFlight));
  state.ready = true;
  state.everReady = true;
  state.restarting = false;
  socket.markHealthy();
  persist();
  hideBanner();
  flush();
  refresh();
}

function onReplyStart(frame) {
  if (!fresh(frame)) return;
  ackPending(frame.message_id);
  startReply(frame.message_id);
  refresh();
}

function onChunk(frame) {
  if (!fresh(frame)) return;
  if (!state.reply || state.reply.messageId !== frame.message_id) startReply(frame.message_id);
  state.reply.text += String(frame.text ?? "");
  view.setText(state.reply.handle, state.reply.text);
}

function onReplyEnd(frame) {
  if (frame.duplicate) {
    // The answer to a message we resent after a drop: it was answered while we were away.
    if (!state.pending || state.pending.id !== frame.message_id) return;
  } else if (!fresh(frame)) {
    return;
  }
  ackPending(frame.message_id);
  const text = String(frame.text ?? "");
  let reply = state.reply && state.reply.messageId === frame.message_id ? state.reply : null;
  if (!reply && text && !ui.log.querySelector(`.msg--joey[data-message-id="${CSS.escape(frame.message_id)}"]`)) {
    startReply(frame.message_id);
    reply = state.reply;
  }
  if (reply) {
    reply.handle.row.dataset.finish = frame.finish_reason;
    if (text) {
      view.setText(reply.handle, text); // the authoritative final text
      view.setState(reply.handle, "done");
      if (frame.finish_reason === "cancelled") view.setMeta(reply.handle, "Stopped");
    } else {
      view.remove(reply.handle);
      if (frame.finish_reason === "cancelled") view.notice("Stopped before Joey said anything.");
    }
  }
  state.reply = null;
  state.awaiting = false;
  view.setBusy(false);
  persist();
  flush();
  refresh();
}

function onReset(frame) {
  if (!fresh(frame)) return;
  view.clear();
  state.reply = null;
  state.pending = null;
  state.queue = []; // typed for the old conversation
  state.awaiting = false;
  view.setBusy(false);
  persist();
  refresh();
  ui.input.focus();
}

const ERROR_TEXT = {
  busy: () => "Joey is still answering. Your message will go out when he's done.",
  message_too_long: () => `That message is too long. The limit is ${state.maxChars} characters.`,
  rate_limited: (f) => `Whoa, slow down! Your message goes out in ${Math.max(1, Math.ceil(f.retry_after ?? 1))} s.`,
  server_restarting: () => "Joey's server is restarting. Reconnecting…",
  model_error: () => "Joey couldn't come up with an answer. Try again?",
  invalid_field: (f) => `That message could not be sent: ${f.message}.`,
  server_full: (f) => `Joey is too popular right now. Retrying in ${Math.ceil(f.retry_after ?? 30)} s…`,
};

function onError(frame) {
  const code = String(frame.code ?? "");
  if (code === "resume_refused") {
    // The session expired (or the server restarted without keeping it): start a new chat on this
    // same connection. Unanswered messages stay queued and go to the new chat.
    const hadChat = ui.log.querySelector(".msg[data-state=done]") !== null;
    clearSession();
    state.stored = null;
    state.appliedSeq = 0;
    state.sentLastSeq = 0;
    state.reply = null;
    state.awaiting = false;
    view.clear();
    view.setBusy(false);
    if (hadChat) view.notice("Your previous chat has expired, so this is a new one.");
    socket.send({ type: "open" });
    return;
  }
  if (code === "session_taken_over") {
    // Never reconnect by ourselves here: two tabs would take the session from each other.
    state.takenOver = true;
    state.stopped = true;
    state.ready = false;
    socket.stop();
    showBanner("This chat is open in another tab or window.", {
      label: "Use it here",
      onClick: () => {
        state.takenOver = false;
        state.stopped = false;
        hideBanner();
        socket.start();
        refresh();
      },
    });
    refresh();
    return;
  }
  if (code === "server_full" || code === "no_session" || code === "session_already_open") {
    socket.retryAfter(frame.retry_after);
    socket.drop(code);
    return;
  }
  if (code === "server_restarting") state.restarting = true;

  const describe = ERROR_TEXT[code];
  const text = describe ? describe(frame) : String(frame.message || "Something went wrong.");
  view.notice(text, code === "model_error" || code === "server_restarting" || code === "busy" ? "warn" : "error");
  const item = state.pending && frame.message_id === state.pending.id ? state.pending : null;
  if (item) {
    state.pending = null;
    state.awaiting = Boolean(state.reply);
    if (code === "busy" || code === "rate_limited") {
      // Not stored by the server: send it again, same id, when allowed.
      state.queue.unshift(item);
      view.setState(item.handle, "queued");
      if (code === "rate_limited") {
        const wait = Math.max(1, Number(frame.retry_after) || 1) * 1000;
        state.holdUntil = Date.now() + wait;
        setTimeout(flush, wait + 50);
        view.setMeta(item.handle, "Waiting to send", editAction(item));
      }
    } else {
      markFailed(item);
    }
    flush();
  }
  refresh();
}

const HANDLERS = {
  session: onSession, reply_start: onReplyStart, chunk: onChunk, reply_end: onReplyEnd, reset: onReset,
  error: onError, pong: () => {},
};

// --- socket events ------------------------------------------------------------------------------
socket.addEventListener("open", () => {
  state.ready = false;
  if (state.stored) {
    state.sentLastSeq = state.appliedSeq;
    socket.send({ type: "resume", session_id: state.stored.session_id, token: state.stored.token,
                  last_seq: state.appliedSeq });
  } else {
    state.sentLastSeq = 0;
    socket.send({ type: "open" });
  }
  refresh();
});

socket.addEventListener("frame", (event) => {
  const frame = event.detail.frame;
  const handler = HANDLERS[frame.type];
  if (handler) handler(frame); // unknown types: a newer server, ignore
});

socket.addEventListener("down", () => {
  state.ready = false;
  if (!state.stopped) showReconnecting();
  refresh();
});

socket.addEventListener("state", () => refresh());

// --- user input ---------------------------------------------------------------------------------
ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
  ui.input.focus();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
    event.preventDefault();
    submit();
  }
});

ui.input.addEventListener("input", refresh);

ui.stop.addEventListener("click", () => {
  if (socket.send({ type: "cancel" })) ui.stop.disabled = true;
  ui.input.focus();
});

ui.newChat.addEventListener("click", () => {
  socket.send({ type: "reset" });
  ui.input.focus();
});

window.addEventListener("online", () => { if (!state.stopped) socket.reconnectNow(); });
// The browser knows the network is gone before the heartbeat would: drop now, resume when back.
window.addEventListener("offline", () => { if (!state.stopped) socket.drop("browser offline"); });
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !state.stopped) socket.reconnectNow();
});

// A tiny handle for debugging from the console (and for tests): no secrets in it.
window.joeyChat = Object.freeze({
  get connection() { return document.documentElement.dataset.connection; },
  get lastSeq() { return state.appliedSeq; },
  dropConnection() { socket.drop("manual"); },
});

// --- start --------------------------------------------------------------------------------------
refresh();
socket.start();
setTimeout(() => { if (!state.everReady && !state.stopped) showReconnecting(); }, 2500);
if (window.matchMedia("(pointer: fine)").matches) ui.input.focus();
