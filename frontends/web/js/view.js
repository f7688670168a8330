// The conversation view. Every piece of user or model text goes in with textContent, never
// innerHTML, so "<img src=x onerror=alert(1)>" shows up literally.

const NEAR_BOTTOM_PX = 96;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class ChatView {
  constructor({ log, empty, jump }) {
    this.log = log;
    this.empty = empty;
    this.jump = jump;
    this.log.addEventListener("scroll", () => {
      if (this.isNearBottom()) this.jump.hidden = true;
    }, { passive: true });
    this.jump.addEventListener("click", () => this.scrollToBottom(true));
  }

  isNearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.log;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.jump.hidden = true;
    this.log.scrollTo({ top: this.log.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  }

  /** Run a DOM change; follow it down only if the reader was already at the bottom. */
  update(change, { force = false } = {}) {
    const follow = force || this.isNearBottom();
    const result = change();
    this._syncEmpty();
    if (follow) this.scrollToBottom();
    else if (this.log.scrollHeight > this.log.clientHeight) this.jump.hidden = false;
    return result;
  }

  clear() {
    this.log.replaceChildren();
    this.jump.hidden = true;
    this._syncEmpty();
  }

  _syncEmpty() {
    this.empty.hidden = this.log.childElementCount > 0;
  }

  /** A message bubble; returns a handle to update it. role: "user" | "joey". */
  addMessage(role, text, messageId, state = "done") {
    return this.update(() => {
      const row = el("div", `msg msg--${role}`);
      row.dataset.role = role;
      row.dataset.state = state;
      if (messageId) row.dataset.messageId = messageId;
      if (role === "joey") {
        const avatar = el("div", "avatar avatar--msg", "J");
        avatar.setAttribute("aria-hidden", "true");
        row.append(avatar);
      }
      const body = el("div", "msg__body");
      const bubble = el("div", "msg__bubble");
      bubble.append(el("span", "visually-hidden", role === "joey" ? "Joey: " : "You: "));
      const textNode = el("span", "msg__text", text);
      bubble.append(textNode);
      const dots = el("span", "dots");
      dots.setAttribute("aria-hidden", "true");
      dots.append(el("i"), el("i"), el("i"));
      bubble.append(dots);
      const meta = el("div", "msg__meta");
      body.append(bubble, meta);
      row.append(body);
      this.log.append(row);
      return { row, textNode, meta };
    }, { force: role === "user" && state === "sending" });
  }

  setText(handle, text) {
    this.update(() => { handle.textNode.textContent = text; });
  }

  setState(handle, state) {
    handle.row.dataset.state = state;
  }

  /** A small line under a bubble, e.g. "Stopped" or "Not sent", with an optional button. */
  setMeta(handle, text, action) {
    this.update(() => {
      handle.meta.replaceChildren();
      if (text) handle.meta.append(el("span", "msg__note", text));
      if (action) {
        const button = el("button", "link-button", action.label);
        button.type = "button";
        button.addEventListener("click", action.onClick);
        handle.meta.append(button);
      }
    });
  }

  remove(handle) {
    this.update(() => handle.row.remove());
  }

  /** A system notice in the conversation: errors and state changes, readable, not console noise. */
  notice(text, kind = "info") {
    return this.update(() => {
      const row = el("div", `notice notice--${kind}`);
      row.dataset.kind = kind;
      row.append(el("span", "notice__text", text));
      this.log.append(row);
      return row;
    });
  }

  setBusy(busy) {
    // Screen readers announce the finished reply once instead of every chunk.
    this.log.setAttribute("aria-busy", busy ? "true" : "false");
  }
}
