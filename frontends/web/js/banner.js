// The banner above the conversation: connection trouble and what the user can do about it.

import { socket, ui } from "./context.js";
import { Phase, connection } from "./phase.js";

let bannerTimer = null;

export function showBanner(text, action) {
  if (ui.bannerText.textContent !== text) ui.bannerText.textContent = text; // an alert: rewrite only what changed
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

/** Re-rendered several times a second: the countdown to the next try, and the network's state, change. */
export function showReconnecting() {
  clearInterval(bannerTimer);
  const render = () => {
    if (connection.stopped) return;
    const left = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    // The real wait to the next try; quick tries (about a second apart) are just "Reconnecting…".
    const when = left >= 2 ? `Reconnecting in ${left} s…` : "Reconnecting…";
    const phase = connection.phase;
    let text;
    if (!navigator.onLine) text = "You're offline. Waiting for the network…";
    else if (socket.state === "connecting" || socket.state === "open") text = phase === Phase.CONNECTING ? "Connecting to Joey…" : "Reconnecting…";
    else if (phase === Phase.RESTARTING) text = `Joey's server is restarting. ${when}`;
    else text = `Connection lost. ${when}`;
    showBanner(text, socket.state === "waiting" ? { label: "Retry now", onClick: () => socket.reconnectNow() } : null);
  };
  render();
  bannerTimer = setInterval(render, 250);
}
