// The line of outgoing messages, owned here: those waiting (oldest first), the one sent and not
// yet acknowledged, and how long a rate limit holds them back. outbox.js sends from it; the
// other modules read it and change it through the functions below. Every change is kept in
// localStorage (store.js), so a reload loses nothing typed; the next session frame settles what
// the server already has, by id, so nothing is answered twice.

import { session } from "./session.js";
import { loadOutbox, saveOutbox } from "./store.js";

const kept = loadOutbox(); // restored without bubbles: outbox.js draws them
const restored = (item) => item && { ...item, handle: null };
let waiting = kept.waiting.map(restored); // {id, text, time, handle} or {id, regenerate: true, handle: null}, oldest first
let pending = restored(kept.pending); // the sent message not yet acknowledged
let answering = restored(kept.answering); // acknowledged, its reply not ended: sent again if a restart lost it
let holdUntil = 0; // rate limited or server busy: send nothing before this time (ms)
let saved = true; // false: localStorage refused the last change, so a reload would lose it

const plain = (item) => item && (item.regenerate ? { id: item.id, regenerate: true }
                                                 : { id: item.id, text: item.text, time: item.time });

function save() {
  saved = saveOutbox({ waiting: waiting.map(plain), pending: plain(pending), answering: plain(answering) });
}

export const queue = Object.freeze({
  get waiting() { return waiting; },
  get pending() { return pending; },
  get holdUntil() { return holdUntil; },
  /** Messages a reload would lose: storage failed, and something is not yet answered. */
  get unsaved() { return !saved && Boolean(waiting.length || pending || answering); },
});

/** A message is out and its reply has not ended: derived, so no path can forget to clear it. */
export const awaiting = () => Boolean(pending || session.reply);

export function add(item) {
  waiting.push(item);
  save();
}

/** Put `item` first in line again (it was sent, and must go again with the same id). */
export function putBack(item) {
  waiting.unshift(item);
  save();
}

/** Take `item` out of the line (the user took it back to edit). */
export function withdraw(item) {
  waiting = waiting.filter((q) => q !== item);
  save();
}

/** The next message goes out: it is pending until the server acknowledges it. */
export function sendNext() {
  pending = waiting.shift();
  save();
  return pending;
}

/** The pending message, if `messageId` is its id (any, if null), is no longer pending: returns it, or null. */
export function takePending(messageId = null) {
  const item = pending;
  if (!item || (messageId !== null && item.id !== messageId)) return null;
  pending = null;
  save();
  return item;
}

/** The server started answering `item`: kept until its reply ends. */
export function startAnswering(item) {
  answering = item;
  save();
}

/** The reply to `messageId` ended: its message is safe in the history. */
export function answered(messageId) {
  if (answering?.id === messageId) answering = null;
  save();
}

/** The message whose reply was under way, taken out: a new session frame decides its fate. */
export function takeAnswering() {
  const item = answering;
  answering = null;
  save();
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
  save();
  return all;
}
