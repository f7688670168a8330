// What survives a reload, in localStorage: the open session (id, token, last seq applied), the
// list of past chats (id, token, a title, when it was last used, and when each message was said)
// the outbox (messages typed and not yet answered) and the user's name.
// localStorage can be unavailable (privacy modes, storage disabled): then the chat still works,
// it just does not survive a reload.

const SESSION_KEY = "joey-chat.session.v1";
const CHATS_KEY = "joey-chat.chats.v1";
const OUTBOX_KEY = "joey-chat.outbox.v1";
const NAME_KEY = "joey-chat.name.v1";
const MAX_CHATS = 100; // the oldest beyond this are forgotten: they expire on the server anyway
const MAX_TIMES = 200; // timestamps kept per chat (the server keeps max_history_turns turns)

function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "null");
  } catch {
    return null; // unreadable or unavailable: start fresh
  }
}

/** Returns false when it could not be written (quota or disabled storage: not fatal). */
function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

export function loadSession() {
  const value = read(SESSION_KEY);
  if (value && typeof value.session_id === "string" && typeof value.token === "string") {
    return { session_id: value.session_id, token: value.token, last_seq: Number(value.last_seq) || 0 };
  }
  return null;
}

export function saveSession(session) {
  write(SESSION_KEY, session);
}

export function clearSession() {
  write(SESSION_KEY, null);
}

/** Past chats, most recently used first: [{session_id, token, title, updated, times}]. */
export function listChats() {
  const chats = read(CHATS_KEY);
  if (!Array.isArray(chats)) return [];
  return chats.filter((c) => c && typeof c.session_id === "string" && typeof c.token === "string")
    .sort((a, b) => (b.updated || 0) - (a.updated || 0));
}

export function findChat(sessionId) {
  return listChats().find((c) => c.session_id === sessionId) || null;
}

/** Add or update a chat: `fields` are merged into it; `times` entries are added to its own. */
export function saveChat(sessionId, token, fields = {}) {
  const chats = listChats();
  let chat = chats.find((c) => c.session_id === sessionId);
  if (!chat) {
    chat = { session_id: sessionId, token, title: "", updated: Date.now(), times: {} };
    chats.unshift(chat);
  }
  const { times, ...rest } = fields;
  Object.assign(chat, rest, { token });
  if (times) {
    const merged = Object.entries({ ...chat.times, ...times });
    chat.times = Object.fromEntries(merged.slice(-MAX_TIMES));
  }
  write(CHATS_KEY, chats.slice(0, MAX_CHATS));
  return chat;
}

export function forgetChat(sessionId) {
  write(CHATS_KEY, listChats().filter((c) => c.session_id !== sessionId));
}

/** Note activity in a chat: its title (the first thing the user said) and when messages were said. */
export function remember(sessionId, token, { title, times } = {}) {
  if (!sessionId || !token) return;
  const known = findChat(sessionId);
  const fields = { title: known?.title || String(title ?? "").slice(0, 200) };
  if (times) Object.assign(fields, { times, updated: Date.now() });
  saveChat(sessionId, token, fields);
}

/** When each message of a chat was said, as far as this browser saw it: {"user:ID": ms, "joey:ID": ms}. */
export function timesOf(sessionId) {
  return findChat(sessionId)?.times || {};
}

const isItem = (item) => item && typeof item.id === "string" && (item.regenerate === true || typeof item.text === "string");

/** The outbox as queue.js left it: {waiting: [item], pending: item|null, answering: item|null}. */
export function loadOutbox() {
  const value = read(OUTBOX_KEY) || {};
  const one = (item) => (isItem(item) ? item : null);
  return { waiting: Array.isArray(value.waiting) ? value.waiting.filter(isItem) : [],
           pending: one(value.pending), answering: one(value.answering) };
}

/** Returns false when it could not be kept: then a reload would lose what is in it. */
export function saveOutbox(outbox) {
  const empty = !outbox.waiting.length && !outbox.pending && !outbox.answering;
  return write(OUTBOX_KEY, empty ? null : outbox);
}

/** The name the user gave (settings.js), or "". */
export function loadName() {
  const value = read(NAME_KEY);
  return typeof value === "string" ? value : "";
}

export function saveName(name) {
  write(NAME_KEY, name || null);
}
