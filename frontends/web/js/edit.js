// Edit a message already said and ask again (protocol: edit): the conversation branches there.
// The server drops that message and every turn after it, then answers the new text under the
// same id; the page does the same, so it shows only the branch, as a reload would.

import { replyActions, socket, ui, view } from "./context.js";
import { connection } from "./phase.js";
import { awaiting, queue } from "./queue.js";
import { resync, session } from "./session.js";
import { named } from "./settings.js";
import { charCount, refresh } from "./status.js";
import { remember } from "./store.js";

let sent = null; // the id of the edit sent whose reply has not started yet

/** Only while nothing else is going on: the server answers one message at a time. */
const canEdit = () => connection.ready && !awaiting() && !queue.waiting.length && !sent;

function button(className, text, label) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = className;
  node.textContent = text;
  if (label) node.setAttribute("aria-label", label);
  return node;
}

function close(handle, form) {
  form.remove();
  delete handle.row.dataset.editing;
}

/** Drop every row after `row`: the turns the server drops with the edit. */
function cutAfter(row) {
  while (row.nextElementSibling) view.remove({ row: row.nextElementSibling });
}

function save(handle, form, box) {
  const text = box.value;
  const invalid = !text.trim() || charCount(text) > session.maxChars;
  box.setAttribute("aria-invalid", String(invalid));
  const messageId = handle.row.dataset.messageId;
  if (invalid || !canEdit() || !socket.send(named({ type: "edit", message_id: messageId, text }))) return;
  sent = messageId;
  close(handle, form);
  cutAfter(handle.row);
  view.setText(handle, text);
  const now = Date.now();
  view.setTime(handle, now);
  remember(session.stored?.session_id, session.stored?.token, { times: { [`user:${messageId}`]: now } });
  refresh();
  ui.input.focus();
}

/** The message becomes an editable box with Save and Cancel. */
function open(handle, editButton) {
  if (!canEdit() || handle.row.dataset.editing !== undefined) return;
  const form = document.createElement("form");
  form.className = "msg__edit";
  const box = document.createElement("textarea");
  box.className = "msg__edit-input";
  box.dir = "auto";
  box.value = handle.textNode.textContent;
  box.rows = Math.min(6, Math.max(2, box.value.split("\n").length));
  box.setAttribute("aria-label", "Edit your message");
  const cancel = button("button button--outline", "Cancel");
  const submit = button("button button--primary", "Save", "Save and ask again");
  submit.type = "submit";
  const actions = document.createElement("div");
  actions.className = "msg__edit-actions";
  actions.append(cancel, submit);
  form.append(box, actions);
  const dismiss = () => { close(handle, form); editButton.focus(); };
  cancel.addEventListener("click", dismiss);
  form.addEventListener("submit", (event) => { event.preventDefault(); save(handle, form, box); });
  box.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Escape") { event.preventDefault(); dismiss(); }
    if (event.key === "Enter" && !event.shiftKey && !event.altKey) { event.preventDefault(); save(handle, form, box); }
  });
  handle.row.dataset.editing = "";
  handle.tools.before(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

function editButtons(role, handle) {
  if (role !== "user") return [];
  // The accessible name holds the visible word, so a voice user can say what is seen (WCAG 2.5.3).
  const node = button("tool tool--edit", "Edit", "Edit your message");
  node.addEventListener("click", () => open(handle, node));
  return [node];
}

/** The edit was refused (busy, rate limited, invalid): the page no longer matches the server, so ask it again. */
function refused() {
  sent = null;
  resync();
  socket.drop("resync");
}

export function bindEdit() {
  replyActions.toolMakers.push(editButtons);
  socket.addEventListener("frame", (event) => {
    const frame = event.detail.frame;
    if (!sent || frame.message_id !== sent) return;
    if (frame.type === "error") refused();
    else if (frame.type === "reply_start" || frame.type === "reply_end") sent = null;
  });
  // A drop may lose the edit: the next session frame's history says which branch the server holds.
  socket.addEventListener("down", () => { sent = null; });
}
