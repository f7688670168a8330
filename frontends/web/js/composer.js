// The composer and the header's buttons: what the user types, sends, stops or starts over.

import { socket, state, ui } from "./context.js";
import { enqueue } from "./outbox.js";
import { charCount, refresh } from "./status.js";

function submit() {
  const text = ui.input.value;
  if (!text.trim() || state.stopped) return;
  if (charCount(text) > state.maxChars) {
    ui.counter.classList.remove("counter--shake");
    void ui.counter.offsetWidth; // restart the animation
    ui.counter.classList.add("counter--shake");
    return;
  }
  ui.input.value = "";
  enqueue(text);
  refresh();
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
    if (socket.send({ type: "cancel" })) ui.stop.disabled = true;
    ui.input.focus();
  });

  ui.newChat.addEventListener("click", () => {
    socket.send({ type: "reset" });
    ui.input.focus();
  });
}
