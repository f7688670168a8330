// Error frames: what each one means for the session, the queue and the person reading.

import { hideBanner, showBanner } from "./banner.js";
import { socket, state, ui, view } from "./context.js";
import { editAction, flush, markFailed } from "./outbox.js";
import { refresh } from "./status.js";
import { clearSession } from "./store.js";

const ERROR_TEXT = {
  busy: () => "Joey is still answering. Your message will go out when he's done.",
  message_too_long: () => `That message is too long. The limit is ${state.maxChars} characters.`,
  rate_limited: (f) => `Whoa, slow down! Your message goes out in ${Math.max(1, Math.ceil(f.retry_after ?? 1))} s.`,
  server_restarting: () => "Joey's server is restarting. Reconnecting…",
  model_error: () => "Joey couldn't come up with an answer. Try again?",
  invalid_field: (f) => `That message could not be sent: ${f.message}.`,
  server_full: (f) => `Joey is too popular right now. Retrying in ${Math.ceil(f.retry_after ?? 30)} s…`,
};

export function onError(frame) {
  const code = String(frame.code ?? "");
  if (code === "resume_refused") {
    // The session expired (or the server restarted without keeping it): start a new chat on this
    // same connection. Unanswered messages stay queued and go to the new chat.
    const hadChat = ui.log.querySelector(".msg[data-state=done]") !== null;
    clearSession();
    state.stored = null;
    state.appliedSeq = 0;
    state.sentLastSeq = 0;
    state.reply = null;
    state.awaiting = false;
    view.clear();
    view.setBusy(false);
    if (hadChat) view.notice("Your previous chat has expired, so this is a new one.");
    socket.send({ type: "open" });
    return;
  }
  if (code === "session_taken_over") {
    // Never reconnect by ourselves here: two tabs would take the session from each other.
    state.takenOver = true;
    state.stopped = true;
    state.ready = false;
    socket.stop();
    showBanner("This chat is open in another tab or window.", {
      label: "Use it here",
      onClick: () => {
        state.takenOver = false;
        state.stopped = false;
        hideBanner();
        socket.start();
        refresh();
      },
    });
    refresh();
    return;
  }
  if (code === "server_full" || code === "no_session" || code === "session_already_open") {
    socket.retryAfter(frame.retry_after);
    socket.drop(code);
    return;
  }
  if (code === "server_restarting") state.restarting = true;

  const describe = ERROR_TEXT[code];
  const text = describe ? describe(frame) : String(frame.message || "Something went wrong.");
  view.notice(text, code === "model_error" || code === "server_restarting" || code === "busy" ? "warn" : "error");
  const item = state.pending && frame.message_id === state.pending.id ? state.pending : null;
  if (item) {
    state.pending = null;
    state.awaiting = Boolean(state.reply);
    if (code === "busy" || code === "rate_limited") {
      // Not stored by the server: send it again, same id, when allowed.
      state.queue.unshift(item);
      view.setState(item.handle, "queued");
      if (code === "rate_limited") {
        const wait = Math.max(1, Number(frame.retry_after) || 1) * 1000;
        state.holdUntil = Date.now() + wait;
        setTimeout(flush, wait + 50);
        view.setMeta(item.handle, "Waiting to send", editAction(item));
      }
    } else {
      markFailed(item);
    }
    flush();
  }
  refresh();
}
