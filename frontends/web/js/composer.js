// The composer: what the user types, sends or stops. Escape stops Joey's reply from anywhere on
// the page (except inside a dialog, where Escape closes the dialog).

import { socket, ui } from "./context.js";
import { enqueue } from "./outbox.js";
import { connection } from "./phase.js";
import { replyCancelled, session } from "./session.js";
import { charCount, refresh } from "./status.js";

function submit() {
  const text = ui.input.value;
  if (!text.trim() || connection.stopped) return;
  if (charCount(text) > session.maxChars) {
    ui.counter.classList.remove("counter--shake");
    void ui.counter.offsetWidth; // restart the animation
    ui.counter.classList.add("counter--shake");
    return;
  }
  ui.input.value = "";
  enqueue(text);
  refresh();
}

/** Stop the reply being written; true if there was one to stop. */
function stopReply() {
  if (!session.reply || session.reply.cancelled || !socket.send({ type: "cancel" })) return false;
  replyCancelled();
  refresh();
  return true;
}

/** Starting a prompt from the empty state: it is sent as if typed. */
function sendText(text) {
  ui.input.value = text;
  submit();
  ui.input.focus();
}

export function bindComposer() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
    ui.input.focus();
  });

  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      submit();
    }
  });

  ui.input.addEventListener("input", refresh);

  ui.stop.addEventListener("click", () => {
    stopReply();
    ui.input.focus();
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || event.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    if (stopReply()) event.preventDefault();
  });

  for (const starter of ui.starters.querySelectorAll("button")) {
    starter.addEventListener("click", () => sendText(starter.textContent.trim()));
  }
}
