// Joey Chat web page: protocol v1 over one reconnecting WebSocket (docs/protocol.md).
//
// The page's modules: context (shared elements, view, socket), the state's three owners (phase:
// the connection; session: the session and its stream; queue: outgoing messages), connection
// (open/resume and frame dispatch), conversation (stream frames), errors, outbox (sending from
// the queue), composer (user input), replies (copy, regenerate), versions (‹ 1/3 › of a regenerated
// reply), continue (after a stop), feedback (thumbs up / down), edit, settings (your name), export,
// chats (past chats: a sidebar on wide screens), status (controls follow the state) and banner.

import { bindChats } from "./chats.js";
import { bindComposer } from "./composer.js";
import { bindConnection, connect } from "./connection.js";
import { socket, ui } from "./context.js";
import { bindEdit } from "./edit.js";
import { bindExport } from "./export.js";
import { bindFeedback } from "./feedback.js";
import { bindOutbox } from "./outbox.js";
import { connection as phase } from "./phase.js";
import { bindReplies } from "./replies.js";
import { session } from "./session.js";
import { bindSettings } from "./settings.js";
import { refresh } from "./status.js";
import { bindVersions } from "./versions.js";

bindConnection();
bindFeedback(); // these three before any bubble is drawn: each gets its buttons as it is made
bindEdit();
bindVersions();
bindOutbox();
bindComposer();
bindReplies();
bindChats();
bindSettings();
bindExport();

// A tiny handle for debugging from the console (and for tests): no secrets in it.
window.joeyChat = Object.freeze({
  get connection() { return document.documentElement.dataset.connection; },
  get phase() { return phase.phase; },
  get lastSeq() { return session.appliedSeq; },
  get failedTries() { return socket.attempt; },
  get retryInMs() { return socket.retryAt ? Math.max(0, socket.retryAt - Date.now()) : 0; },
  dropConnection() { socket.drop("manual"); },
});

refresh();
connect();
if (window.matchMedia("(pointer: fine)").matches) ui.input.focus();
// The page shell from a cache when the network is down (sw.js): a reload offline still opens the chat.
navigator.serviceWorker?.register("sw.js").catch(() => {});
