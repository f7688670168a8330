// Outgoing messages. One message at a time (protocol: busy, not a queue): what the user sends
// while Joey answers, or while the connection is down, waits here and goes out after the reply_end.
// A regenerate request waits in the same line, so it never overtakes (or is overtaken by) a message.

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
  if (!item.handle) return; // a regenerate request has no bubble: its error notice says it all
  view.setState(item.handle, "failed");
  view.setMeta(item.handle, "Not sent", editAction(item));
}

export function enqueue(text) {
  const id = newId();
  const item = { id, text, time: Date.now(), handle: view.addMessage("user", text, id, "queued", Date.now()) };
  state.queue.push(item);
  flush();
  if (state.queue.includes(item)) view.setMeta(item.handle, state.ready ? "Waiting for Joey" : "Waiting for the connection");
}

/** Ask for a new answer to the user message `messageId` (it must be the last one). */
export function enqueueRegenerate(messageId) {
  state.queue.push({ id: messageId, regenerate: true, handle: null });
  flush();
}

export function flush() {
  if (!state.ready || state.awaiting || !state.queue.length) return;
  if (Date.now() < state.holdUntil) return; // rate limited: a timer calls flush() again
  const item = state.queue.shift();
  state.pending = item;
  if (item.regenerate) {
    socket.send({ type: "regenerate", message_id: item.id });
  } else {
    view.setState(item.handle, "sending");
    view.setMeta(item.handle, "");
    socket.send({ type: "message", id: item.id, text: item.text }); // a resend keeps its id: never answered twice
  }
  refresh();
}

/** The server took the pending message (its reply started or ended): returns it, or null. */
export function ackPending(messageId) {
  const item = state.pending;
  if (!item || item.id !== messageId) return null;
  if (item.handle) {
    view.setState(item.handle, "done");
    view.setMeta(item.handle, "");
  }
  state.pending = null;
  return item;
}
