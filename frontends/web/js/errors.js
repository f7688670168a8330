// Error frames: what each one means for the session, the queue and the person reading.

import { hideBanner, showBanner } from "./banner.js";
import { socket, ui, view } from "./context.js";
import { editAction, flush, markFailed } from "./outbox.js";
import { connection } from "./phase.js";
import { holdTill, putBack, queue, takePending } from "./queue.js";
import { forget, hello, session } from "./session.js";
import { refresh } from "./status.js";

const seconds = (n) => `${n} s`;

const ERROR_TEXT = {
  busy: () => "Joey is still answering. Your message will go out when he's done.",
  message_too_long: () => `That message is too long. The limit is ${session.maxChars} characters.`,
  rate_limited: () => (left) => `Whoa, slow down! Your message goes out in ${seconds(left)}.`,
  server_busy: () => (left) => `Joey's got a lot of people to talk to right now. Your message goes out in ${seconds(left)}.`,
  server_restarting: () => "Joey's server is restarting. Reconnecting…",
  model_error: () => "Joey couldn't come up with an answer. Try again?",
  nothing_to_regenerate: () => "There's nothing for Joey to answer again.",
  nothing_to_continue: () => "Joey already finished that reply.",
  invalid_field: (f) => `That message could not be sent: ${f.message}.`,
};
const WARNINGS = new Set(["model_error", "server_restarting", "busy", "server_busy", "nothing_to_regenerate",
                          "nothing_to_continue"]);
const WAIT_AND_RESEND = new Set(["busy", "rate_limited", "server_busy"]); // not stored: the same id goes again

let countdown = null; // the one "goes out in N s" notice: {row, timer}
let restartNotice = null; // "Joey's server is restarting": true only until the next session

/** A session again: the restart is over, so its notice goes. */
export function restartOver() {
  if (restartNotice?.isConnected) view.remove({ row: restartNotice });
  restartNotice = null;
}

function endCountdown() {
  if (!countdown) return;
  clearInterval(countdown.timer);
  if (countdown.row.isConnected) view.remove({ row: countdown.row });
  countdown = null;
}

/** A notice that counts down to `until` (ms), then leaves the log and lets the queue go on. */
function countdownNotice(render, until, kind) {
  endCountdown();
  const left = () => Math.max(0, Math.ceil((until - Date.now()) / 1000));
  const row = view.notice(render(left()), kind);
  const text = row.querySelector(".notice__text");
  const timer = setInterval(() => {
    if (left() > 0) {
      text.textContent = render(left());
      return;
    }
    endCountdown();
    flush();
  }, 250);
  countdown = { row, timer };
}

/** The stored session is gone on the server: start a new chat on this connection; the queue stays. */
function startOver() {
  const hadChat = ui.log.querySelector(".msg[data-state=done]") !== null;
  forget();
  view.clear();
  if (hadChat) view.notice("Your previous chat has expired, so this is a new one.");
  socket.send(hello());
  refresh();
}

function takenOver() {
  // Never reconnect by ourselves here: two tabs would take the session from each other.
  connection.takenOver();
  socket.stop();
  showBanner("This chat is open in another tab or window.", {
    label: "Use it here",
    onClick: () => {
      connection.takeBack();
      hideBanner();
      socket.start();
      refresh();
    },
  });
  refresh();
}

/** The server holds as many chats from this address as it allows: reopening one is the way on. */
function tooManyChats() {
  connection.refused();
  socket.stop();
  showBanner("Joey's server is keeping too many of your chats already. Reopen one of them.", {
    label: "Your chats",
    onClick: () => ui.chatsButton.click(),
  });
  refresh();
}

/** The pending message (or regenerate) the error is about: back in the queue, or marked failed. */
function settlePending(code, frame) {
  const item = queue.pending && frame.message_id === queue.pending.id ? takePending() : null;
  if (!item) return;
  if (!WAIT_AND_RESEND.has(code)) {
    markFailed(item);
    return;
  }
  putBack(item);
  if (item.handle) view.setState(item.handle, "queued");
  if (code !== "busy") {
    const wait = Math.max(1, Number(frame.retry_after) || 1) * 1000;
    holdTill(Date.now() + wait);
    if (item.handle) view.setMeta(item.handle, "Waiting to send", editAction(item));
  }
}

export function onError(frame) {
  const code = String(frame.code ?? "");
  if (code === "resume_refused") return startOver();
  if (code === "session_taken_over") return takenOver();
  if (code === "too_many_sessions") return tooManyChats();
  if (code === "server_full" || code === "no_session" || code === "session_already_open") {
    socket.retryAfter(frame.retry_after);
    socket.drop(code);
    return;
  }
  if (code === "server_restarting") {
    connection.restartAnnounced();
    socket.expectRestart();
  }
  settlePending(code, frame);
  const describe = ERROR_TEXT[code];
  const text = describe ? describe(frame) : String(frame.message || "Something went wrong.");
  const kind = WARNINGS.has(code) ? "warn" : "error";
  const retryAt = Date.now() + Math.max(1, Number(frame.retry_after) || 1) * 1000;
  if (typeof text === "function") countdownNotice(text, Math.max(queue.holdUntil, retryAt), kind);
  else if (code === "server_restarting") restartNotice = restartNotice?.isConnected ? restartNotice : view.notice(text, kind);
  else view.notice(text, kind);
  flush();
  refresh();
}
