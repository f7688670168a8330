// The one chat on this page, shared by the modules that drive it: its elements, its view and its
// socket. Its state has owners of its own: phase.js (the connection), session.js (the session
// and its stream) and queue.js (outgoing messages). Module scripts run after the document is
// parsed, so the elements exist by the time this runs.

import { ReconnectingSocket } from "./socket.js";
import { ChatView } from "./view.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  status: $("status"), newChat: $("new-chat"), chatsButton: $("chats-button"), chats: $("chats"),
  chatList: $("chat-list"), chatsClose: $("chats-close"), chatsNew: $("chats-new"), banner: $("banner"),
  bannerText: $("banner-text"), bannerAction: $("banner-action"), log: $("messages"), empty: $("empty"),
  starters: $("starters"), jump: $("jump"), form: $("composer"), input: $("input"), send: $("send"),
  stop: $("stop"), counter: $("counter"), hint: $("hint"),
};

/**
 * What the buttons under messages do: filled in by replies.js, and toolMakers by the modules with
 * buttons of their own (feedback.js, edit.js); the view only renders them.
 */
export const replyActions = { copy: () => {}, regenerate: () => {}, toolMakers: [] };
export const view = new ChatView({ log: ui.log, empty: ui.empty, jump: ui.jump }, replyActions);

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
export const socket = new ReconnectingSocket(wsUrl);
