// Past chats: every conversation with something in it is kept in this browser's list (store.js),
// so "New chat" never throws one away. The list reopens a chat (resume), renames it (here only),
// finds it by its title or its text, or deletes it: from the list, and on the server (a short
// second connection resumes it and sends reset). Wide screens keep the list open as a sidebar
// (the dialog shown without a backdrop); narrow ones open it as a dialog from the Chats button.

import { socket, ui } from "./context.js";
import { switchChat } from "./conversation.js";
import { session } from "./session.js";
import { forgetChat, listChats, saveChat } from "./store.js";

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const ERASE_TIMEOUT_MS = 10000;
const MAX_TEXT_CHARS = 4000; // of a chat's words kept for search: the most recent
const wide = window.matchMedia("(min-width: 1100px)");
const search = document.getElementById("chat-search");

const docked = () => ui.chats.dataset.docked === "true";
const titleOf = (chat) => chat.name || chat.title || "Untitled chat";

/** Close the list, unless it is the sidebar, which stays. */
function closeList() {
  if (!docked()) ui.chats.close();
}

/** The words of the chat on the page, kept with it so that search finds it by what was said. */
function keepText() {
  const stored = session.stored;
  const words = Array.from(ui.log.querySelectorAll(".msg__text"), (node) => node.textContent.trim()).join("\n");
  if (stored && words) saveChat(stored.session_id, stored.token, { text: words.slice(-MAX_TEXT_CHARS) });
}

function matches(chat, query) {
  return !query || [titleOf(chat), chat.title, chat.text].some((t) => String(t ?? "").toLocaleLowerCase().includes(query));
}

/** The title becomes a box: Enter keeps the new name (an empty one gives the first message back), Escape cancels. */
function rename(chat, item) {
  const form = document.createElement("form");
  form.className = "chat-item__rename";
  const box = document.createElement("input");
  box.className = "chats__input";
  box.type = "text";
  box.dir = "auto";
  box.maxLength = 200;
  box.value = titleOf(chat);
  box.setAttribute("aria-label", `New name for chat: ${titleOf(chat)}`);
  form.append(box);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveChat(chat.session_id, chat.token, { name: box.value.trim() });
    render();
    ui.chatList.querySelector(`[data-session-id="${CSS.escape(chat.session_id)}"] .chat-item__open`)?.focus();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault(); // cancels the rename, not the dialog
    render();
  });
  item.replaceChildren(form);
  box.focus();
  box.select();
}

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

function renameButton(chat, item) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "chat-item__rename-button";
  node.textContent = "Rename";
  node.setAttribute("aria-label", `Rename chat: ${titleOf(chat)}`);
  node.addEventListener("click", () => rename(chat, item));
  return node;
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
  title.textContent = titleOf(chat);
  const when = document.createElement("time");
  when.className = "chat-item__date";
  when.dateTime = new Date(chat.updated || 0).toISOString();
  when.textContent = current ? "Open now" : DATE_FORMAT.format(new Date(chat.updated || 0));
  open.append(title, when);
  open.addEventListener("click", () => {
    closeList();
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
  item.append(open, renameButton(chat, item), remove);
  return item;
}

function render() {
  const chats = listChats();
  const query = search.value.trim().toLocaleLowerCase();
  ui.chatList.replaceChildren(...chats.filter((chat) => matches(chat, query)).map(chatItem));
  ui.chats.dataset.empty = chats.length ? "false" : "true";
  ui.chats.dataset.found = String(!chats.length || ui.chatList.childElementCount > 0);
}

/** Start a new chat; the one on screen stays in the list. */
function newChat() {
  if (ui.chats.open) closeList();
  switchChat(null);
  ui.input.focus();
}

/** Wide: the list is a sidebar, always open. Narrow: a dialog, opened from the Chats button. */
function dock() {
  const modal = ui.chats.open && ui.chats.matches(":modal");
  ui.chats.dataset.docked = String(wide.matches);
  document.documentElement.toggleAttribute("data-sidebar", wide.matches);
  if (wide.matches) {
    if (modal) ui.chats.close();
    render();
    if (!ui.chats.open) ui.chats.show();
  } else if (ui.chats.open && !modal) {
    ui.chats.close();
  }
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
  search.addEventListener("input", render);
  // After the conversation's own handler: the page shows the frame's effect by now.
  socket.addEventListener("frame", (event) => {
    if (!["session", "reply_end", "version", "reset"].includes(event.detail.frame.type)) return;
    keepText();
    if (docked() && !ui.chatList.querySelector(".chat-item__rename")) render();
  });
  wide.addEventListener("change", dock);
  dock();
}
