// Past chats: every conversation with something in it is kept in this browser's list (store.js),
// so "New chat" never throws one away. The list reopens a chat (resume) or deletes it: from the
// list, and on the server (a short second connection resumes it and sends reset).

import { socket, ui } from "./context.js";
import { switchChat } from "./conversation.js";
import { session } from "./session.js";
import { forgetChat, listChats } from "./store.js";

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const ERASE_TIMEOUT_MS = 10000;

/** A short second connection that resumes the chat and empties it: what "Delete" means on the server. */
function eraseOnServer(chat) {
  const ws = new WebSocket(socket.url);
  const timer = setTimeout(() => ws.close(), ERASE_TIMEOUT_MS);
  const finish = () => { clearTimeout(timer); ws.close(); };
  ws.onopen = () => ws.send(JSON.stringify({ type: "resume", session_id: chat.session_id, token: chat.token }));
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "session") ws.send(JSON.stringify({ type: "reset" }));
    else if (frame.type === "reset" || frame.type === "error") finish();
  };
  ws.onerror = () => {}; // the chat is gone from the list either way; the server expires it later
}

function deleteChat(chat) {
  forgetChat(chat.session_id);
  if (chat.session_id === session.stored?.session_id) socket.send({ type: "reset" }); // its reset frame empties the view
  else eraseOnServer(chat);
  render();
}

function chatItem(chat) {
  const item = document.createElement("li");
  item.className = "chat-item";
  item.dataset.sessionId = chat.session_id;
  const current = chat.session_id === session.stored?.session_id;
  if (current) item.setAttribute("aria-current", "true");

  const open = document.createElement("button");
  open.type = "button";
  open.className = "chat-item__open";
  const title = document.createElement("span");
  title.className = "chat-item__title";
  title.dir = "auto";
  title.textContent = chat.title || "Untitled chat";
  const when = document.createElement("time");
  when.className = "chat-item__date";
  when.dateTime = new Date(chat.updated || 0).toISOString();
  when.textContent = current ? "Open now" : DATE_FORMAT.format(new Date(chat.updated || 0));
  open.append(title, when);
  open.addEventListener("click", () => {
    ui.chats.close();
    if (!current) switchChat({ session_id: chat.session_id, token: chat.token });
  });

  // Two steps, so one slip of the finger deletes nothing.
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "chat-item__delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete chat: ${title.textContent}`);
  remove.addEventListener("click", () => {
    if (remove.dataset.confirm === undefined) {
      remove.dataset.confirm = "";
      remove.textContent = "Delete?";
      remove.setAttribute("aria-label", `Really delete chat: ${title.textContent}?`);
      return;
    }
    deleteChat(chat);
  });
  item.append(open, remove);
  return item;
}

function render() {
  const chats = listChats();
  ui.chatList.replaceChildren(...chats.map(chatItem));
  ui.chats.dataset.empty = chats.length ? "false" : "true";
}

/** Start a new chat; the one on screen stays in the list. */
function newChat() {
  if (ui.chats.open) ui.chats.close();
  switchChat(null);
  ui.input.focus();
}

export function bindChats() {
  ui.chatsButton.addEventListener("click", () => {
    render();
    ui.chats.showModal();
  });
  ui.chatsClose.addEventListener("click", () => ui.chats.close());
  ui.chatsNew.addEventListener("click", newChat);
  ui.newChat.addEventListener("click", newChat);
  ui.chats.addEventListener("click", (event) => {
    if (event.target === ui.chats) ui.chats.close(); // a click on the backdrop
  });
}
