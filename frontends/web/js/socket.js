// A WebSocket that reconnects by itself, and a heartbeat (protocol v1 "ping") that notices a dead
// connection the browser has not noticed yet.
//
// Retries: a server restart takes seconds, so the first tries come quickly (about one a second,
// with jitter); only a longer outage backs off exponentially, up to maxDelay. A server that says
// it is restarting gets quick tries for a minute.
//
// It knows nothing about sessions: on every new connection it emits "open", and the app sends
// open or resume. Events (EventTarget, detail in event.detail):
//   open              a fresh socket is connected
//   frame   {frame}   a parsed server frame
//   down    {delay, code, reason}   the socket is gone; a retry is scheduled in `delay` ms
//   state   {state}   "connecting" | "open" | "waiting" | "stopped"

export class ReconnectingSocket extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.baseDelay = options.baseDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 15000;
    this.fastDelay = options.fastDelay ?? 1000; // the longest wait while retrying quickly
    this.fastTries = options.fastTries ?? 8; // quick tries before backing off
    this.fastUntil = 0; // quick tries until this time (ms), whatever the count: the server is restarting
    this.heartbeatMs = options.heartbeatMs ?? 20000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 10000;
    this.ws = null;
    this.state = "waiting";
    this.attempt = 0; // failures since the last healthy connection
    this.minNextDelay = 0; // a server-given retry_after, in ms
    this.retryTimer = null;
    this.retryAt = 0;
    this.pingSentAt = 0; // 0: no ping outstanding
    this.lastPing = 0;
    this.pingNonce = 0;
    this.heartbeat = null;
  }

  start() {
    if (this.state === "connecting" || this.state === "open") return;
    this._clearRetry();
    this._connect();
    if (!this.heartbeat) this.heartbeat = setInterval(() => this._beat(), Math.min(this.heartbeatMs, 5000));
  }

  /** The connection carries a session now: the next failure starts the backoff from scratch. */
  markHealthy() {
    this.attempt = 0;
    this.minNextDelay = 0;
    this.fastUntil = 0; // the restart, if any, is over: the next one gets a window of its own
  }

  /** The server asked us to wait (retry_after, in seconds) before the next try. */
  retryAfter(seconds) {
    if (typeof seconds === "number" && seconds > 0) this.minNextDelay = Math.min(seconds * 1000, 10 * 60 * 1000);
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Abandon the current socket at once (it may be half-dead) and retry with backoff. */
  drop(reason = "dropped") {
    const ws = this.ws;
    if (!ws) return;
    this._forget(ws);
    this._scheduleRetry(4000, reason);
  }

  /** The server said it is restarting: keep retrying quickly for a while, counted from its first word. */
  expectRestart(withinMs = 60000) {
    // A server still draining refuses each retry with the same news: that must not renew the window.
    if (Date.now() >= this.fastUntil) this.fastUntil = Date.now() + withinMs;
  }

  /** A new connection now, whatever the state of this one (e.g. to switch to another session). */
  reconnect() {
    if (this.ws) this._forget(this.ws);
    this.attempt = 0;
    this.minNextDelay = 0;
    this._clearRetry();
    if (this.state === "stopped") this._setState("waiting");
    this._connect();
  }

  /** Skip the wait: used when the browser comes back online or the user clicks "Retry now". */
  reconnectNow() {
    if (this.state === "waiting") {
      this.attempt = 0;
      this.minNextDelay = 0;
      this._clearRetry();
      this._connect();
    }
  }

  /** No more reconnects (e.g. another tab took the session over) until start() is called. */
  stop() {
    if (this.ws) this._forget(this.ws);
    this._clearRetry();
    this._setState("stopped");
  }

  _connect() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._scheduleRetry(1006, String(err));
      return;
    }
    this.ws = ws;
    this.pingSentAt = 0;
    this._setState("connecting");
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this._setState("open");
      this.dispatchEvent(new CustomEvent("open"));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.pingSentAt = 0; // any frame proves the connection is alive
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not JSON: not protocol v1, ignore
      }
      if (frame && typeof frame === "object" && typeof frame.type === "string") {
        this.dispatchEvent(new CustomEvent("frame", { detail: { frame } }));
      }
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this._forget(ws);
      this._scheduleRetry(event.code, event.reason);
    };
    ws.onerror = () => {}; // onclose follows with the details
  }

  _forget(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
    if (ws === this.ws) this.ws = null;
  }

  _scheduleRetry(code, reason) {
    if (this.state === "stopped") return;
    const exp = this.attempt < this.fastTries || Date.now() < this.fastUntil
      ? Math.min(this.fastDelay, this.baseDelay * 2 ** this.attempt)
      : Math.min(this.maxDelay, this.fastDelay * 2 ** (this.attempt - this.fastTries + 1));
    const jittered = exp / 2 + Math.random() * (exp / 2); // "equal jitter": never a thundering herd
    const delay = Math.round(Math.max(jittered, this.minNextDelay));
    this.attempt = Math.min(this.attempt + 1, 30);
    this.minNextDelay = 0;
    this._clearRetry();
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this._connect();
    }, delay);
    this._setState("waiting");
    this.dispatchEvent(new CustomEvent("down", { detail: { delay, code, reason } }));
  }

  _clearRetry() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  _beat() {
    if (this.state !== "open" || !this.ws) return;
    const now = Date.now();
    if (this.pingSentAt) {
      // Judged against the last ping, not the last tick: background tabs throttle timers.
      if (now - this.pingSentAt > this.pongTimeoutMs) this.drop("heartbeat timeout");
      return;
    }
    if (now - this.lastPing >= this.heartbeatMs) {
      this.lastPing = now;
      this.pingSentAt = now;
      this.send({ type: "ping", nonce: ++this.pingNonce });
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state } }));
  }
}
