// The session this page holds, as far as its stream goes, owned here: which session (id and
// token, kept in localStorage), the highest seq applied to the view, the last_seq of the resume
// in flight, the server's message limit and the reply being streamed. Other modules read them
// and change them through the functions below.

import { named } from "./settings.js";
import { clearSession, forgetChat, loadSession, saveSession } from "./store.js";

let stored = loadSession(); // {session_id, token, last_seq} or null
let appliedSeq = 0; // highest seq applied to the view
let sentLastSeq = 0; // the last_seq of the resume in progress
let maxChars = 1000; // the server's default, until its session frame says
let reply = null; // the reply being streamed: {messageId, text, handle, cancelled, kind}

export const session = Object.freeze({
  get stored() { return stored; },
  get appliedSeq() { return appliedSeq; },
  get sentLastSeq() { return sentLastSeq; },
  get maxChars() { return maxChars; },
  get reply() { return reply; },
});

/** What a new connection sends first: resume the stored session from the last seq applied, or open one. */
export function hello() {
  if (!stored) {
    sentLastSeq = 0;
    return named({ type: "open" });
  }
  sentLastSeq = appliedSeq;
  return { type: "resume", session_id: stored.session_id, token: stored.token, last_seq: appliedSeq };
}

/** Accept a frame's seq once: frames at or below what the view already shows are replays. */
export function fresh(frame) {
  if (typeof frame.seq !== "number") return true;
  if (frame.seq <= appliedSeq) return false;
  appliedSeq = frame.seq;
  return true;
}

/** The view no longer matches the server's stream: count from 0 on the next resume. */
export function resync() {
  appliedSeq = 0;
}

export function persist() {
  if (stored) {
    stored.last_seq = appliedSeq;
    saveSession(stored);
  }
}

/** The server's session frame: this is the session now, its frames counted from `seq`. */
export function adopt(frame, seq) {
  stored = { session_id: frame.session_id, token: frame.token, last_seq: 0 };
  maxChars = frame.limits?.max_message_chars ?? maxChars;
  appliedSeq = seq;
  persist();
}

/** Another chat (`next`: its id and token) or a new one (null), counted from 0. */
export function switchTo(next) {
  stored = next ? { ...next, last_seq: 0 } : null;
  if (stored) saveSession(stored);
  else clearSession();
  appliedSeq = 0;
  reply = null;
}

/** The stored session is gone on the server: forget it here too. */
export function forget() {
  if (stored) forgetChat(stored.session_id);
  clearSession();
  stored = null;
  appliedSeq = 0;
  sentLastSeq = 0;
  reply = null;
}

/**
 * The reply now being streamed (its bubble is `handle`), or null when none is. `kind`, from its
 * reply_start: "answer", "regenerate" or "continue" (its chunks extend `text`, what is shown).
 */
export function setReply(messageId, handle = null, { text = "", kind = "answer" } = {}) {
  reply = messageId ? { messageId, text, handle, cancelled: false, kind } : null;
}

/** A chunk of the streamed reply: returns its text so far. */
export function extendReply(text) {
  reply.text += text;
  return reply.text;
}

/** The streamed reply's bubble was drawn again (the view was re-rendered around it). */
export function redrawnReply(handle) {
  reply.handle = handle;
}

/** Stop was asked for: the reply_end is on its way. */
export function replyCancelled() {
  reply.cancelled = true;
}
