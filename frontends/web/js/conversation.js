// The conversation as the server streams it: session, reply_start, chunk, reply_end and reset.
//
// Invariant that makes reconnects lossless: the view shows exactly the stream frames with
// seq <= state.appliedSeq. A resume sends last_seq = appliedSeq, so the server replays only the
// frames after it. A reload starts with an empty view and appliedSeq = 0, so the whole in-flight
// reply is replayed; completed turns come from the session frame's history either way.

import { hideBanner, showBanner } from "./banner.js";
import { socket, state, ui, view } from "./context.js";
import { ackPending, flush } from "./outbox.js";
import { refresh } from "./status.js";
import { saveSession } from "./store.js";

const PROTOCOL = 1;

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

export function onSession(frame) {
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

export function onReplyStart(frame) {
  if (!fresh(frame)) return;
  ackPending(frame.message_id);
  startReply(frame.message_id);
  refresh();
}

export function onChunk(frame) {
  if (!fresh(frame)) return;
  if (!state.reply || state.reply.messageId !== frame.message_id) startReply(frame.message_id);
  state.reply.text += String(frame.text ?? "");
  view.setText(state.reply.handle, state.reply.text);
}

export function onReplyEnd(frame) {
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

export function onReset(frame) {
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
