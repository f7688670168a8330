// Where the page stands with the server: one value, owned here. Other modules read it and ask
// for a transition by name; each transition names the phases it may start from, and any other
// throws "expected X, got Y", so a path the page was never meant to take shows at once instead
// of leaving it half-connected.
//
//   connecting, reconnecting, restarting ──session──▶ ready ──socket down──▶ reconnecting
//   connecting, ready, reconnecting ──server_restarting──▶ restarting (until the next session)
//   ready, restarting ──session_taken_over──▶ taken-over ──"Use it here"──▶ reconnecting
//   connecting, reconnecting, restarting ──too_many_sessions, a newer protocol──▶ stopped
//   any ──another chat──▶ reconnecting (connecting and restarting stay as they are)

export const Phase = Object.freeze({
  CONNECTING: "connecting", // no session yet on this page: the first open or resume is on its way
  READY: "ready", // the current socket carries a session
  RECONNECTING: "reconnecting", // a session was had; a new connection will resume it (or open the next chat)
  RESTARTING: "restarting", // the server said it is restarting: quick retries until it is back
  TAKEN_OVER: "taken-over", // another tab has the session: no reconnects until the user asks
  STOPPED: "stopped", // no connection until the user acts: too many chats, or a newer server
});

const ALL = Object.values(Phase);
const LIVE = [Phase.CONNECTING, Phase.READY, Phase.RECONNECTING, Phase.RESTARTING];
const WAITING = [Phase.CONNECTING, Phase.RECONNECTING, Phase.RESTARTING]; // a socket without a session yet

let current = Phase.CONNECTING;

function move(from, to) {
  if (!from.includes(current)) throw new Error(`connection: expected ${from.join(" or ")}, got ${current}`);
  current = to;
}

export const connection = Object.freeze({
  get phase() { return current; },
  /** The current socket carries a session: messages may go out. */
  get ready() { return current === Phase.READY; },
  /** No connection until the user acts. */
  get stopped() { return current === Phase.TAKEN_OVER || current === Phase.STOPPED; },

  /** A new socket is open: it has no session until the open or resume is answered. */
  socketOpened() { move(WAITING, current); },
  sessionStarted() { move(WAITING, Phase.READY); },
  socketDown() { move(LIVE, current === Phase.READY ? Phase.RECONNECTING : current); },
  restartAnnounced() { move(LIVE, Phase.RESTARTING); },
  takenOver() { move([Phase.READY, Phase.RESTARTING], Phase.TAKEN_OVER); },
  /** The server will not give this page a session: too many chats, or it speaks a newer protocol. */
  refused() { move(WAITING, Phase.STOPPED); },
  /** "Use it here": take the session back from the other tab. */
  takeBack() { move([Phase.TAKEN_OVER], Phase.RECONNECTING); },
  /** Another chat, on a new connection. */
  switchedChat() {
    move(ALL, current === Phase.CONNECTING || current === Phase.RESTARTING ? current : Phase.RECONNECTING);
  },
});
