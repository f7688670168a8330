// The session that survives a reload: id, token and the last seq this tab applied.
// localStorage can be unavailable (privacy modes, storage disabled): then the chat still works,
// it just does not survive a reload.

const KEY = "joey-chat.session.v1";

export function loadSession() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || "null");
    if (value && typeof value.session_id === "string" && typeof value.token === "string") {
      return { session_id: value.session_id, token: value.token, last_seq: Number(value.last_seq) || 0 };
    }
  } catch { /* unreadable or unavailable: start fresh */ }
  return null;
}

export function saveSession(session) {
  try {
    localStorage.setItem(KEY, JSON.stringify(session));
  } catch { /* quota or disabled storage: not fatal */ }
}

export function clearSession() {
  try {
    localStorage.removeItem(KEY);
  } catch { /* ignore */ }
}
