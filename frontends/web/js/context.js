// The one chat on this page, shared by the modules that drive it: its elements, its view, its
// socket and the state they all read and change. Module scripts run after the document is
// parsed, so the elements exist by the time this runs.

import { ReconnectingSocket } from "./socket.js";
import { loadSession } from "./store.js";
import { ChatView } from "./view.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  status: $("status"), newChat: $("new-chat"), banner: $("banner"), bannerText: $("banner-text"),
  bannerAction: $("banner-action"), log: $("messages"), empty: $("empty"), jump: $("jump"),
  typing: $("typing"), form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  counter: $("counter"), hint: $("hint"),
};
export const view = new ChatView({ log: ui.log, empty: ui.empty, jump: ui.jump });

export const state = {
  stored: loadSession(), // {session_id, token, last_seq} or null
  ready: false, // the current socket carries a session
  appliedSeq: 0, // highest seq applied to the view
  sentLastSeq: 0, // the last_seq of the resume in progress
  reply: null, // the reply being streamed: {messageId, text, handle}
  awaiting: false, // a message is out and its reply has not ended
  pending: null, // the sent message not yet acknowledged: {id, text, handle}
  queue: [], // messages waiting to be sent, oldest first
  holdUntil: 0, // rate limited: send nothing before this time (ms)
  maxChars: 1000,
  everReady: false,
  takenOver: false, // another tab has the session: no automatic reconnects
  stopped: false, // no connection until the user acts (taken over, or a newer protocol)
  restarting: false,
};

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
export const socket = new ReconnectingSocket(wsUrl);
