// Outgoing messages. One message at a time (protocol: busy, not a queue): what the user sends
// while Joey answers, or while the connection is down, waits here and goes out after the reply_end.

import { socket, state, ui, view } from "./context.js";
import { refresh } from "./status.js";

function newId() {
  if (crypto.randomUUID) {
    try { return crypto.randomUUID(); } catch { /* insecure context */ }
  }
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Take a message that was not sent back into the input, so it is not lost and can be fixed. */
export function editAction(item) {
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

export function markFailed(item) {
  view.setState(item.handle, "failed");
  view.setMeta(item.handle, "Not sent", editAction(item));
}

export function enqueue(text) {
  const id = newId();
  const item = { id, text, handle: view.addMessage("user", text, id, "queued") };
  state.queue.push(item);
  flush();
  if (state.queue.includes(item)) view.setMeta(item.handle, state.ready ? "Waiting for Joey" : "Waiting for the connection");
}

export function flush() {
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

export function ackPending(messageId) {
  if (state.pending && state.pending.id === messageId) {
    view.setState(state.pending.handle, "done");
    view.setMeta(state.pending.handle, "");
    state.pending = null;
  }
}
