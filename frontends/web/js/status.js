// The page's controls and status line follow the state: whatever changes the state calls
// refresh() afterwards, so no control is ever left showing an old state.

import { socket, state, ui } from "./context.js";

const HINT = ui.hint.textContent;

export const charCount = (text) => Array.from(text).length; // code points, as the server counts

export function refresh() {
  const connected = state.ready && socket.state === "open";
  const text = ui.input.value;
  const count = charCount(text);
  const over = count > state.maxChars;
  ui.counter.textContent = `${count} / ${state.maxChars}`;
  ui.counter.classList.toggle("counter--warn", count > state.maxChars * 0.9 && !over);
  ui.counter.classList.toggle("counter--over", over);
  ui.input.setAttribute("aria-invalid", over ? "true" : "false");
  ui.hint.textContent = over ? `Too long: ${count - state.maxChars} characters over the limit` : HINT;
  ui.hint.classList.toggle("composer__hint--error", over);

  // Sending is always possible (while Joey answers or the line is down, it waits in a queue).
  ui.send.disabled = over || !text.trim() || state.stopped;
  ui.stop.hidden = !state.awaiting;
  ui.stop.disabled = !connected;
  ui.newChat.disabled = !connected;
  ui.typing.hidden = !state.awaiting;
  ui.form.classList.toggle("composer__form--over", over);
  const lines = text.split("\n").length;
  ui.input.rows = Math.min(6, Math.max(1, lines)); // fallback where field-sizing is unsupported

  let status;
  if (state.stopped) status = state.takenOver ? "Open in another tab" : "Offline";
  else if (!connected) status = state.everReady ? "Reconnecting…" : "Connecting…";
  else if (state.awaiting) status = "typing…";
  else status = "Online";
  ui.status.textContent = status;
  ui.status.dataset.state = connected ? (state.awaiting ? "typing" : "online") : "offline";
  document.documentElement.dataset.connection =
    connected ? "online" : state.stopped ? "stopped" : socket.state === "waiting" ? "offline" : "connecting";
}
