// The line of outgoing messages, owned here: those waiting (oldest first), the one sent and not
// yet acknowledged, and how long a rate limit holds them back. outbox.js sends from it; the
// other modules read it and change it through the functions below.

import { session } from "./session.js";

let waiting = []; // {id, text, time, handle} or {id, regenerate: true, handle: null}, oldest first
let pending = null; // the sent message not yet acknowledged
let answering = null; // acknowledged, its reply not ended: sent again if a restart lost it
let holdUntil = 0; // rate limited or server busy: send nothing before this time (ms)

export const queue = Object.freeze({
  get waiting() { return waiting; },
  get pending() { return pending; },
  get holdUntil() { return holdUntil; },
});

/** A message is out and its reply has not ended: derived, so no path can forget to clear it. */
export const awaiting = () => Boolean(pending || session.reply);

export function add(item) {
  waiting.push(item);
}

/** Put `item` first in line again (it was sent, and must go again with the same id). */
export function putBack(item) {
  waiting.unshift(item);
}

/** Take `item` out of the line (the user took it back to edit). */
export function withdraw(item) {
  waiting = waiting.filter((q) => q !== item);
}

/** The next message goes out: it is pending until the server acknowledges it. */
export function sendNext() {
  pending = waiting.shift();
  return pending;
}

/** The pending message, if `messageId` is its id (any, if null), is no longer pending: returns it, or null. */
export function takePending(messageId = null) {
  const item = pending;
  if (!item || (messageId !== null && item.id !== messageId)) return null;
  pending = null;
  return item;
}

/** The server started answering `item`: kept until its reply ends. */
export function startAnswering(item) {
  answering = item;
}

/** The reply to `messageId` ended: its message is safe in the history. */
export function answered(messageId) {
  if (answering?.id === messageId) answering = null;
}

/** The message whose reply was under way, taken out: a new session frame decides its fate. */
export function takeAnswering() {
  const item = answering;
  answering = null;
  return item;
}

/** Send nothing before `until` (ms since the epoch; 0: no hold). */
export function holdTill(until) {
  holdUntil = until;
}

/** Forget every message in line, the pending one too: returns them, pending first. */
export function clear() {
  const all = [pending, ...waiting].filter(Boolean);
  pending = null;
  answering = null;
  waiting = [];
  return all;
}
