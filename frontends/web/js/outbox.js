// Outgoing messages. One message at a time (protocol: busy, not a queue): what the user sends
// while Joey answers, or while the connection is down, waits in line (queue.js) and goes out
// after the reply_end. A regenerate request waits in the same line, so it never overtakes (or is
// overtaken by) a message.

import { socket, ui, view } from "./context.js";
import { connection } from "./phase.js";
import { add, awaiting, queue, sendNext, takePending, withdraw } from "./queue.js";
import { named } from "./settings.js";
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
      withdraw(item);
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

function showWaiting(item) {
  view.setMeta(item.handle, connection.ready ? "Waiting for Joey" : "Waiting for the connection");
}

export function enqueue(text) {
  const id = newId();
  const item = { id, text, time: Date.now(), handle: view.addMessage("user", text, id, "queued", Date.now()) };
  add(item);
  flush();
  if (queue.waiting.includes(item)) showWaiting(item);
}

/**
 * Messages kept from before a reload show at once, waiting for the session frame (which settles
 * them); where storage failed, leaving with messages unsent asks first.
 */
export function bindOutbox() {
  for (const item of [queue.pending, ...queue.waiting]) {
    if (!item || item.regenerate) continue;
    item.handle = view.addMessage("user", item.text, item.id, "queued", item.time);
    showWaiting(item);
  }
  window.addEventListener("beforeunload", (event) => { if (queue.unsaved) event.preventDefault(); });
}

/** Ask for a new answer to the user message `messageId` (it must be the last one). */
export function enqueueRegenerate(messageId) {
  add({ id: messageId, regenerate: true, handle: null });
  flush();
}

export function flush() {
  if (!connection.ready || awaiting() || !queue.waiting.length) return;
  if (Date.now() < queue.holdUntil) return; // rate limited: a timer calls flush() again
  const item = sendNext();
  if (item.regenerate) {
    socket.send({ type: "regenerate", message_id: item.id });
  } else {
    view.setState(item.handle, "sending");
    view.setMeta(item.handle, "");
    socket.send(named({ type: "message", id: item.id, text: item.text })); // a resend keeps its id: never answered twice
  }
  refresh();
}

/** The server took the pending message (its reply started or ended): returns it, or null. */
export function ackPending(messageId) {
  const item = takePending(messageId);
  if (item?.handle) {
    view.setState(item.handle, "done");
    view.setMeta(item.handle, "");
  }
  return item;
}
