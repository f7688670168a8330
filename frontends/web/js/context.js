// The one chat on this page, shared by the modules that drive it: its elements, its view, its
// socket and the state they all read and change. Module scripts run after the document is
// parsed, so the elements exist by the time this runs.

import { ReconnectingSocket } from "./socket.js";
import { loadSession } from "./store.js";
import { ChatView } from "./view.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  status: $("status"), newChat: $("new-chat"), chatsButton: $("chats-button"), chats: $("chats"),
  chatList: $("chat-list"), chatsClose: $("chats-close"), chatsNew: $("chats-new"), banner: $("banner"),
  bannerText: $("banner-text"), bannerAction: $("banner-action"), log: $("messages"), empty: $("empty"),
  starters: $("starters"), jump: $("jump"), form: $("composer"), input: $("input"), send: $("send"),
  stop: $("stop"), counter: $("counter"), hint: $("hint"),
};

/** What the buttons under Joey's replies do: filled in by replies.js (the view only renders them). */
export const replyActions = { copy: () => {}, regenerate: () => {} };
export const view = new ChatView({ log: ui.log, empty: ui.empty, jump: ui.jump }, replyActions);

export const state = {
  stored: loadSession(), // {session_id, token, last_seq} or null
  ready: false, // the current socket carries a session
  appliedSeq: 0, // highest seq applied to the view
  sentLastSeq: 0, // the last_seq of the resume in progress
  reply: null, // the reply being streamed: {messageId, text, handle}
  pending: null, // the sent message not yet acknowledged: {id, text, handle}
  queue: [], // messages waiting to be sent, oldest first
  holdUntil: 0, // rate limited or server busy: send nothing before this time (ms)
  maxChars: 1000,
  everReady: false,
  takenOver: false, // another tab has the session: no automatic reconnects
  stopped: false, // no connection until the user acts (taken over, or a newer protocol)
  restarting: false,
  /** A message is out and its reply has not ended: derived, so no path can forget to clear it. */
  get awaiting() { return Boolean(this.pending || this.reply); },
};

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
export const socket = new ReconnectingSocket(wsUrl);
