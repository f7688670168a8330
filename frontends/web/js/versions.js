// Versions of Joey's reply (protocol: Versions): regenerate keeps the earlier ones, and ‹ 1/3 ›
// under the reply flips between them. The server holds which one is chosen (the next message is
// answered from it), so a flip is asked of it and shown when its version frame says so.

import { offerContinue } from "./continue.js";
import { replyActions, socket, view } from "./context.js";
import { showRatings } from "./feedback.js";
import { connection } from "./phase.js";
import { awaiting, queue } from "./queue.js";

const kept = new Map(); // message id -> {versions: [{text, finish_reason}], version}
let maxVersions = 10; // the server's default max_reply_versions, until its session frame says

const finishOf = (v) => (typeof v?.finish_reason === "string" ? v.finish_reason : "stop");

function tool(text, label, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "tool tool--version";
  node.textContent = text;
  node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

/** Ask the server for the version `step` away from the one shown. */
function flip(handle, step) {
  const messageId = handle.row.dataset.messageId;
  const entry = kept.get(messageId);
  const version = entry ? entry.version + step : -1;
  if (!entry || version < 0 || version >= entry.versions.length) return;
  if (!connection.ready || awaiting() || queue.waiting.length) return; // one thing at a time, as the server
  socket.send({ type: "version", message_id: messageId, version });
}

function pager(role, handle) {
  if (role !== "joey") return [];
  const group = document.createElement("span");
  group.className = "pager";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Versions of Joey's reply");
  group.hidden = true;
  const count = document.createElement("span");
  count.className = "pager__count";
  group.append(tool("‹", "Previous version", () => flip(handle, -1)), count,
               tool("›", "Next version", () => flip(handle, 1)));
  return [group];
}

/** The pager under the reply to `messageId` says which version shows, of how many. */
function draw(messageId) {
  const group = view.reply(messageId)?.tools.querySelector(".pager");
  const entry = kept.get(messageId);
  if (!group) return;
  group.hidden = !entry || entry.versions.length < 2;
  if (group.hidden) return;
  const [previous, count, next] = group.children;
  count.textContent = `${entry.version + 1}/${entry.versions.length}`;
  // aria-disabled, not disabled: a disabled button under the focus would drop it to <body>.
  previous.setAttribute("aria-disabled", String(entry.version === 0));
  next.setAttribute("aria-disabled", String(entry.version === entry.versions.length - 1));
}

/** The session frame's history is the truth: versions, and the text and note of each reply. */
export function showVersions(history, limits) {
  maxVersions = Number(limits?.max_reply_versions) || maxVersions;
  kept.clear();
  for (const turn of history) {
    if (turn.role !== "joey" || typeof turn.message_id !== "string") continue;
    if (Array.isArray(turn.versions)) {
      kept.set(turn.message_id, { versions: turn.versions.map((v) => ({ text: String(v.text ?? ""), finish_reason: finishOf(v) })),
                                  version: Number(turn.version) || 0 });
    }
    const handle = view.reply(turn.message_id);
    if (!handle || handle.row.dataset.state !== "done") continue;
    if (handle.textNode.textContent !== String(turn.text ?? "")) view.setText(handle, String(turn.text ?? ""));
    offerContinue(handle, finishOf(turn));
    draw(turn.message_id);
  }
}

/** A regenerate starts: the answer shown so far is a version, if the history did not say so already. */
export function regenerating(messageId, handle) {
  if (!kept.has(messageId) && handle.textNode.textContent) {
    kept.set(messageId, { versions: [{ text: handle.textNode.textContent, finish_reason: handle.row.dataset.finish || "stop" }],
                          version: 0 });
  }
}

/** A reply ended: a regenerate's is the newest version, and the chosen one; a continue's is the chosen one, longer. */
export function replyEnded(kind, messageId, text, finish) {
  if (kind === "answer") kept.delete(messageId); // a new answer (an edit asks under the same id)
  const entry = kept.get(messageId);
  if (kind === "regenerate" && entry) {
    entry.versions.push({ text, finish_reason: finish });
    entry.versions.splice(0, Math.max(0, entry.versions.length - maxVersions));
    entry.version = entry.versions.length - 1;
  } else if (kind === "continue" && entry) {
    entry.versions[entry.version] = { text, finish_reason: finish };
  }
  draw(messageId);
}

/** A regenerate that said nothing leaves the answer there was: it shows again. */
export function restoreShown(messageId) {
  const entry = kept.get(messageId);
  if (!entry) return false;
  const shown = entry.versions[entry.version];
  offerContinue(view.addMessage("joey", shown.text, messageId, "done"), shown.finish_reason);
  draw(messageId);
  return true;
}

function chosen(frame) {
  const entry = kept.get(frame.message_id);
  const handle = view.reply(frame.message_id);
  if (!entry || !handle || typeof frame.version !== "number") return;
  if (entry.version !== frame.version) showRatings([{ role: "joey", message_id: frame.message_id, rating: null }]);
  entry.version = frame.version;
  entry.versions[frame.version] = { text: String(frame.text ?? ""), finish_reason: finishOf(frame) };
  view.setText(handle, String(frame.text ?? ""));
  offerContinue(handle, finishOf(frame));
  draw(frame.message_id);
}

export function bindVersions() {
  replyActions.toolMakers.push(pager);
  socket.addEventListener("frame", (event) => {
    if (event.detail.frame.type === "version") chosen(event.detail.frame);
  });
}
