// The conversation as the server streams it: session, reply_start, chunk, reply_end and reset.
//
// Invariant that makes reconnects lossless: the view shows exactly the stream frames with
// seq <= session.appliedSeq. A resume sends last_seq = appliedSeq, so the server replays only the
// frames after it. A reload starts with an empty view and appliedSeq = 0, so the whole in-flight
// reply is replayed; completed turns come from the session frame's history either way.

import { hideBanner, showBanner } from "./banner.js";
import { offerContinue } from "./continue.js";
import { socket, ui, view } from "./context.js";
import { restartOver } from "./errors.js";
import { showRatings } from "./feedback.js";
import { ackPending, flush } from "./outbox.js";
import { connection } from "./phase.js";
import * as line from "./queue.js";
import { adopt, extendReply, fresh, persist, redrawnReply, resync, session, setReply, switchTo } from "./session.js";
import { refresh } from "./status.js";
import { remember, timesOf } from "./store.js";
import { regenerating, replyEnded, restoreShown, showVersions } from "./versions.js";

const PROTOCOL = 1;

const roleOf = (turn) => (turn.role === "joey" ? "joey" : "user");
const keyOf = (role, messageId) => `${role}:${messageId}`;

/**
 * Joey's bubble for the answer to `messageId`, under its question. `kind` is its reply_start's: a
 * regenerate streams in place of the answer shown (kept as a version), a continue extends it.
 */
function startReply(messageId, kind = "answer") {
  if (session.reply) view.setState(session.reply.handle, "done");
  const old = view.reply(messageId);
  if (old && kind === "continue") {
    view.setState(old, "streaming");
    view.setMeta(old, "");
    setReply(messageId, old, { text: old.textNode.textContent, kind });
    return;
  }
  if (old && kind === "regenerate") regenerating(messageId, old);
  if (old) view.remove(old);
  setReply(messageId, view.addMessage("joey", "", messageId, "streaming"), { kind });
}

function renderedKeys() {
  return Array.from(ui.log.querySelectorAll(".msg[data-state=done]"),
                    (row) => keyOf(row.dataset.role, row.dataset.messageId));
}

/** A server newer than this page: stop, rather than misread its frames. */
function refuseNewerProtocol(frame) {
  if (!(typeof frame.protocol === "number" && frame.protocol > PROTOCOL)) return false;
  connection.refused();
  socket.stop();
  showBanner("Joey's server was updated. Reload the page to keep chatting.",
             { label: "Reload", onClick: () => location.reload() });
  refresh();
  return true;
}

/**
 * Keep the partial bubble only if the server will send exactly what it is missing. Returns false
 * when this tab claimed to have seen a reply start it holds no bubble for: then ask again from 0.
 */
function reconcileInFlight(frame, inFlight) {
  const resumedHere = frame.resumed && session.stored?.session_id === frame.session_id;
  const claimed = inFlight && inFlight.seq <= session.sentLastSeq;
  const reply = session.reply;
  const keep = Boolean(resumedHere && claimed && reply?.messageId === inFlight.message_id);
  if (reply && !keep) {
    view.remove(reply.handle);
    setReply(null);
  }
  if (claimed && !keep) {
    resync();
    socket.drop("resync");
    return false;
  }
  return true;
}

/**
 * Messages not yet answered go back in the queue (same ids), unless the server has them. One
 * whose reply was under way and is neither in flight nor in the history was lost to a restart
 * (a planned one interrupts replies it cannot finish, and keeps nothing): it goes again.
 */
function requeueUnanswered(historyKeys, inFlight) {
  const lost = line.takeAnswering();
  if (lost && inFlight?.message_id === lost.id) line.startAnswering(lost);
  const item = line.takePending();
  if (item?.regenerate) {
    // Whether the server got it cannot be told from history: dropping it never answers twice.
  } else if (item && !historyKeys.includes(keyOf("user", item.id))) {
    line.putBack(item);
  } else if (item) {
    view.remove(item.handle); // the server has it: history shows it
  }
  if (lost && inFlight?.message_id !== lost.id && !historyKeys.includes(keyOf("user", lost.id))) line.putBack(lost);
  for (const queued of line.queue.waiting) {
    if (queued.handle) view.remove(queued.handle);
    // Kept from before a reload, and sent meanwhile by another tab of this browser: not again.
    if (!queued.regenerate && historyKeys.includes(keyOf("user", queued.id))) line.withdraw(queued);
  }
}

/**
 * Completed turns: history is authoritative. Re-render only if the view disagrees with it, so
 * notes like "Stopped" survive a reconnect that changed nothing. Returns the times of turns this
 * browser sees for the first time (a reply that ended while it was offline): now.
 */
function renderHistory(history, historyKeys, sessionId) {
  const shown = renderedKeys();
  if (shown.length === historyKeys.length && shown.every((k, i) => k === historyKeys[i])) return {};
  const partial = session.reply;
  const times = timesOf(sessionId);
  const firstSeen = {};
  const now = Date.now();
  view.clear();
  history.forEach((turn, i) => {
    const key = historyKeys[i];
    if (!times[key]) firstSeen[key] = now;
    view.addMessage(roleOf(turn), String(turn.text ?? ""), turn.message_id, "done", times[key] || now);
  });
  if (partial) redrawnReply(view.addMessage("joey", partial.text, partial.messageId, "streaming"));
  return firstSeen;
}

export function onSession(frame) {
  if (refuseNewerProtocol(frame)) return;
  const inFlight = frame.in_flight || null;
  if (!reconcileInFlight(frame, inFlight)) return;
  const history = Array.isArray(frame.history) ? frame.history : [];
  const historyKeys = history.map((turn) => keyOf(roleOf(turn), turn.message_id));
  requeueUnanswered(historyKeys, inFlight);
  const firstSeen = renderHistory(history, historyKeys, frame.session_id);
  showRatings(history);
  showVersions(history, frame.limits);
  for (const item of line.queue.waiting) {
    if (!item.regenerate) item.handle = view.addMessage("user", item.text, item.id, "queued", item.time);
  }
  // The reply still being written shows at once, under its question; its frames follow (a
  // regenerate's or a continue's reply_start among them, which says what becomes of the answer shown).
  if (inFlight && !session.reply && !view.reply(inFlight.message_id)) startReply(inFlight.message_id);

  // After a server restart the session's last_seq can be below ours: count from the server's.
  adopt(frame, inFlight ? session.sentLastSeq : Number(frame.last_seq) || 0);
  if (history.length) {
    const title = history.find((t) => roleOf(t) === "user")?.text;
    remember(frame.session_id, frame.token, Object.keys(firstSeen).length ? { title, times: firstSeen } : { title });
  }
  connection.sessionStarted();
  socket.markHealthy();
  hideBanner();
  restartOver();
  flush();
  refresh();
}

export function onReplyStart(frame) {
  if (!fresh(frame)) return;
  const item = ackPending(frame.message_id);
  if (item && !item.regenerate) line.startAnswering(item);
  if (item && !item.regenerate) remember(session.stored?.session_id, session.stored?.token,
                                         { title: item.text, times: { [keyOf("user", item.id)]: item.time } });
  const kind = frame.continue ? "continue" : frame.regenerate ? "regenerate" : "answer";
  if (session.reply?.messageId !== frame.message_id || kind !== "answer") startReply(frame.message_id, kind);
  refresh();
}

export function onChunk(frame) {
  if (!fresh(frame)) return;
  if (session.reply?.messageId !== frame.message_id) startReply(frame.message_id);
  view.setText(session.reply.handle, extendReply(String(frame.text ?? "")));
}

/** A reply_end for a message resent after a drop: it was answered while we were away. */
function isMissedAnswer(frame) {
  return Boolean(frame.duplicate && line.queue.pending && line.queue.pending.id === frame.message_id);
}

export function onReplyEnd(frame) {
  if (frame.duplicate ? !isMissedAnswer(frame) : !fresh(frame)) return;
  ackPending(frame.message_id);
  line.answered(frame.message_id);
  const text = String(frame.text ?? "");
  const shown = ui.log.querySelector(`.msg--joey[data-message-id="${CSS.escape(frame.message_id)}"]`);
  if (session.reply?.messageId !== frame.message_id && text && !shown) startReply(frame.message_id);
  const reply = session.reply?.messageId === frame.message_id ? session.reply : null;
  setReply(null);
  if (reply) finishReply(reply, frame, text);
  persist();
  flush();
  refresh();
}

function finishReply(reply, frame, text) {
  const cancelled = frame.finish_reason === "cancelled";
  reply.handle.row.dataset.finish = frame.finish_reason;
  if (!text) {
    view.remove(reply.handle);
    if (reply.kind === "regenerate" && restoreShown(frame.message_id)) return;
    if (cancelled) view.notice("Stopped before Joey said anything.", "info", { row: view.question(frame.message_id) });
    return;
  }
  view.setText(reply.handle, text); // the authoritative final text
  view.setState(reply.handle, "done");
  offerContinue(reply.handle, frame.finish_reason);
  replyEnded(reply.kind, frame.message_id, text, frame.finish_reason);
  const now = Date.now();
  view.setTime(reply.handle, now);
  remember(session.stored?.session_id, session.stored?.token, { times: { [keyOf("joey", frame.message_id)]: now } });
}

export function onReset(frame) {
  if (!fresh(frame)) return;
  view.clear();
  setReply(null);
  line.clear(); // typed for the old conversation
  persist();
  refresh();
  ui.input.focus();
}

/**
 * Leave this chat for another (`stored`: its id and token) or a new one (null), on a new
 * connection: one session per connection. Messages still waiting go back into the composer.
 */
export function switchChat(stored) {
  const waiting = line.clear().filter((item) => !item.regenerate).map((item) => item.text);
  if (waiting.length) ui.input.value = [...waiting, ui.input.value].filter(Boolean).join("\n");
  switchTo(stored);
  connection.switchedChat();
  line.holdTill(0);
  view.clear();
  hideBanner();
  socket.reconnect();
  refresh();
}
