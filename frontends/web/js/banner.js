// The banner above the conversation: connection trouble and what the user can do about it.

import { socket, ui } from "./context.js";
import { Phase, connection } from "./phase.js";

let bannerTimer = null;

export function showBanner(text, action) {
  ui.bannerText.textContent = text;
  ui.bannerAction.hidden = !action;
  if (action) {
    ui.bannerAction.textContent = action.label;
    ui.bannerAction.onclick = action.onClick;
  }
  ui.banner.hidden = false;
}

export function hideBanner() {
  clearInterval(bannerTimer);
  bannerTimer = null;
  ui.banner.hidden = true;
}

/** Re-rendered every second: the countdown to the next try, and the network's state, change. */
export function showReconnecting() {
  clearInterval(bannerTimer);
  const render = () => {
    if (connection.stopped) return;
    const left = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    const phase = connection.phase;
    let text;
    if (!navigator.onLine) text = "You're offline. Waiting for the network…";
    else if (socket.state === "connecting" || socket.state === "open") text = phase === Phase.CONNECTING ? "Connecting to Joey…" : "Reconnecting…";
    else if (phase === Phase.RESTARTING) text = `Joey's server is restarting. Reconnecting in ${left} s…`;
    else text = left > 0 ? `Connection lost. Reconnecting in ${left} s…` : "Reconnecting…";
    showBanner(text, socket.state === "waiting" ? { label: "Retry now", onClick: () => socket.reconnectNow() } : null);
  };
  render();
  bannerTimer = setInterval(render, 1000);
}
