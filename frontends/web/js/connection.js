// The session on a reconnecting socket: open or resume on every new connection, hand each frame
// to its handler, and reconnect as soon as the browser says it can.

import { showReconnecting } from "./banner.js";
import { socket } from "./context.js";
import { onChunk, onReplyEnd, onReplyStart, onReset, onSession } from "./conversation.js";
import { onError } from "./errors.js";
import { Phase, connection } from "./phase.js";
import { hello } from "./session.js";
import { refresh } from "./status.js";

const HANDLERS = {
  session: onSession, reply_start: onReplyStart, chunk: onChunk, reply_end: onReplyEnd, reset: onReset,
  error: onError, pong: () => {},
};

export function bindConnection() {
  socket.addEventListener("open", () => {
    connection.socketOpened();
    socket.send(hello());
    refresh();
  });

  socket.addEventListener("frame", (event) => {
    const frame = event.detail.frame;
    const handler = HANDLERS[frame.type];
    if (handler) handler(frame); // unknown types: a newer server, ignore
  });

  socket.addEventListener("down", () => {
    connection.socketDown();
    showReconnecting();
    refresh();
  });

  socket.addEventListener("state", () => refresh());

  window.addEventListener("online", () => { if (!connection.stopped) socket.reconnectNow(); });
  // The browser knows the network is gone before the heartbeat would: drop now, resume when back.
  window.addEventListener("offline", () => { if (!connection.stopped) socket.drop("browser offline"); });
  // Coming back to the tab, or to the page from the back/forward cache: try at once, not at the next backoff.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !connection.stopped) socket.reconnectNow();
  });
  window.addEventListener("pageshow", () => { if (!connection.stopped) socket.reconnectNow(); });
}

export function connect() {
  socket.start();
  // A first connection that takes this long is worth explaining rather than a silent spinner.
  setTimeout(() => { if (connection.phase === Phase.CONNECTING) showReconnecting(); }, 2500);
}
