// The page's controls and status line follow the state: whatever changes the state calls
// refresh() afterwards, so no control is ever left showing an old state.

import { socket, ui, view } from "./context.js";
import { Phase, connection } from "./phase.js";
import { awaiting, queue } from "./queue.js";
import { session } from "./session.js";

const HINT = ui.hint.textContent;
const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/** Characters as the server counts them (code points): the limit is checked with this. */
export const charCount = (text) => Array.from(text).length;

/** Characters as a person counts them: a family emoji is one, not seven. */
function visibleCount(text) {
  if (!graphemes) return charCount(text);
  let count = 0;
  for (const _ of graphemes.segment(text)) count += 1;
  return count;
}

function refreshCounter(text) {
  const count = charCount(text);
  const shown = visibleCount(text);
  const limit = session.maxChars;
  const over = count > limit;
  ui.counter.textContent = `${shown} / ${limit}`;
  ui.counter.classList.toggle("counter--warn", count > limit * 0.9 && !over);
  ui.counter.classList.toggle("counter--over", over);
  ui.input.setAttribute("aria-invalid", over ? "true" : "false");
  // Emoji made of several code points count as several: say so when that is what tips it over.
  if (!over) ui.hint.textContent = HINT;
  else if (shown <= limit) ui.hint.textContent = "Too long: emoji and accents can count as several characters";
  else ui.hint.textContent = `Too long: ${shown - limit} ${shown - limit === 1 ? "character" : "characters"} over the limit`;
  ui.hint.classList.toggle("composer__hint--error", over);
  ui.form.classList.toggle("composer__form--over", over);
  return over;
}

export function refresh() {
  const connected = connection.ready && socket.state === "open";
  const stopped = connection.stopped;
  const text = ui.input.value;
  const over = refreshCounter(text);
  // While the server is away nothing is being typed: no Stop, no busy log, no caret (styles.css).
  const answering = awaiting() && connected;

  // Sending is always possible (while Joey answers or the line is down, it waits in a queue).
  ui.send.disabled = over || !text.trim() || stopped;
  const stopDisabled = Boolean(session.reply?.cancelled); // asked once: the reply_end is on its way
  // Stop going away (or going dead) under the focus would drop it to <body>: keep the user's place.
  if (document.activeElement === ui.stop && (!answering || stopDisabled)) ui.input.focus();
  ui.stop.hidden = !answering;
  ui.stop.disabled = stopDisabled;
  ui.newChat.disabled = !ui.log.querySelector(".msg") && !queue.waiting.length;
  view.setBusy(answering && Boolean(session.reply));
  view.markLatest();
  const lines = text.split("\n").length;
  ui.input.rows = Math.min(6, Math.max(1, lines)); // fallback where field-sizing is unsupported

  let status;
  if (stopped) status = connection.phase === Phase.TAKEN_OVER ? "Open in another tab" : "Offline";
  else if (!connected) status = connection.phase === Phase.CONNECTING ? "Connecting…" : "Reconnecting…";
  else status = "Online";
  ui.status.textContent = status;
  ui.status.dataset.state = connected ? "online" : "offline";
  document.documentElement.dataset.connection =
    connected ? "online" : stopped ? "stopped" : socket.state === "waiting" ? "offline" : "connecting";
}
