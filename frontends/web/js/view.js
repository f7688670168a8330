// The conversation view. Every piece of user or model text goes in with textContent, never
// innerHTML, so "<img src=x onerror=alert(1)>" shows up literally.
//
// Scrolling: the view remembers whether the reader is at the bottom ("stuck"). Anything that
// changes the log's content or its size (a banner, a phone keyboard, a wider textarea) keeps a
// stuck reader at the bottom; a reader who scrolled up stays where he is and gets "New messages".

const NEAR_BOTTOM_PX = 96;
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className, label, text) {
  const node = el("button", className, text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  return node;
}

export class ChatView {
  /**
   * actions: {copy(handle), regenerate(handle)}, called by the buttons under Joey's replies, and
   * toolMakers: functions (role, handle) => [nodes] that add their own buttons under a message.
   */
  constructor({ log, empty, jump }, actions) {
    this.log = log;
    this.empty = empty;
    this.jump = jump;
    this.actions = actions;
    this.stuck = true;
    this.lastTop = 0;
    // Only a scroll that moves up unsticks the reader. A scroll event can arrive after the content
    // has already grown past the threshold (a long chunk, a reply's tools row), and judging it by
    // its distance from the bottom alone would wrongly stop following the conversation.
    this.log.addEventListener("scroll", () => {
      const top = this.log.scrollTop;
      if (this.isNearBottom()) this.stuck = true;
      else if (top < this.lastTop - 1) this.stuck = false;
      this.lastTop = top;
      if (this.stuck) this.jump.hidden = true;
    }, { passive: true });
    this.jump.addEventListener("click", () => this.scrollToBottom(true));
    // The log shrinks when a banner shows or a phone keyboard opens, and a row grows when its
    // tools or a note appear: whatever changes size, a reader at the bottom stays there.
    this.resizes = new ResizeObserver(() => { if (this.stuck) this.scrollToBottom(); });
    this.resizes.observe(this.log);
  }

  isNearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.log;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(smooth = false) {
    this.jump.hidden = true;
    this.stuck = true;
    this.log.scrollTo({ top: this.log.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  }

  /** Run a DOM change; follow it down only if the reader was already at the bottom (or `force`). */
  update(change, { force = false } = {}) {
    const follow = force || this.stuck;
    const result = change();
    this._syncEmpty();
    if (follow) this.scrollToBottom();
    else if (this.log.scrollHeight > this.log.clientHeight) this.jump.hidden = false;
    return result;
  }

  clear() {
    for (const row of this.log.children) this.resizes.unobserve(row);
    this.log.replaceChildren();
    this.jump.hidden = true;
    this.stuck = true;
    this._syncEmpty();
  }

  _syncEmpty() {
    const empty = this.log.childElementCount === 0;
    this.empty.hidden = !empty;
    // A Tab stop so the keyboard can scroll the conversation, but none while there is nothing in it.
    if (empty) this.log.removeAttribute("tabindex");
    else this.log.tabIndex = 0;
  }

  /** The row of the user's message `messageId`, if shown. */
  question(messageId) {
    return this.log.querySelector(`.msg--user[data-message-id="${CSS.escape(messageId)}"]`);
  }

  /** The handle of Joey's reply to `messageId`, if shown, as addMessage returned it. */
  reply(messageId) {
    const row = this.log.querySelector(`.msg--joey[data-message-id="${CSS.escape(messageId)}"]`);
    return row && { row, textNode: row.querySelector(".msg__text"), meta: row.querySelector(".msg__meta"),
                     tools: row.querySelector(".msg__tools") };
  }

  /** Where Joey's answer to `messageId` goes: right under its question, above any message still waiting. */
  _placeReply(row, messageId) {
    const question = messageId && this.question(messageId);
    const waiting = this.log.querySelector(".msg--user:is([data-state=queued], [data-state=sending], [data-state=failed])");
    if (question && question !== waiting) question.after(row);
    else if (waiting) waiting.before(row);
    else this.log.append(row);
  }

  /**
   * A message bubble; returns a handle to update it. role: "user" | "joey". A reply is placed
   * under its question; a user's message goes at the end and brings the view down to it.
   */
  addMessage(role, text, messageId, state = "done", time = null) {
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
      textNode.dir = "auto"; // right-to-left text reads in its own order
      bubble.append(textNode);
      if (role === "joey") {
        const dots = el("span", "dots");
        dots.append(el("span", "visually-hidden", "Joey is typing"), el("i"), el("i"), el("i"));
        bubble.append(dots);
      }
      const meta = el("div", "msg__meta");
      const tools = el("div", "msg__tools");
      const handle = { row, textNode, meta, tools };
      tools.append(el("time", "msg__time"));
      if (role === "joey") {
        const copy = button("tool tool--copy", "Copy Joey's reply", "Copy");
        copy.addEventListener("click", () => this.actions.copy(handle));
        // The accessible name holds the visible word, so a voice user can say what is seen (WCAG 2.5.3).
        const again = button("tool tool--regenerate", "Regenerate Joey's reply", "Regenerate");
        again.addEventListener("click", () => this.actions.regenerate(handle));
        tools.append(copy, again);
      }
      for (const make of this.actions.toolMakers || []) tools.append(...make(role, handle));
      body.append(bubble, meta, tools);
      row.append(body);
      if (role === "joey") this._placeReply(row, messageId);
      else this.log.append(row);
      this.resizes.observe(row);
      this.setTime(handle, time);
      return handle;
    }, { force: role === "user" && state !== "done" });
  }

  /** When it was said (ms since the epoch): shown on hover and focus, in full as a tooltip. */
  setTime(handle, time) {
    const node = handle.tools.querySelector(".msg__time");
    node.hidden = !time;
    if (!time) return;
    const date = new Date(time);
    node.dateTime = date.toISOString();
    node.textContent = TIME_FORMAT.format(date);
    node.title = DATE_FORMAT.format(date);
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
        const link = button("link-button", null, action.label);
        link.addEventListener("click", action.onClick);
        handle.meta.append(link);
      }
    });
  }

  remove(handle) {
    this.resizes.unobserve(handle.row);
    this.update(() => handle.row.remove());
  }

  /**
   * A system notice in the conversation: errors and state changes, readable, not console noise.
   * With `after` (a handle), it sits under that message instead of at the end.
   */
  notice(text, kind = "info", after = null) {
    return this.update(() => {
      const row = el("div", `notice notice--${kind}`);
      row.dataset.kind = kind;
      row.append(el("span", "notice__text", text));
      if (after?.row?.isConnected) after.row.after(row);
      else this.log.append(row);
      this.resizes.observe(row);
      return row;
    });
  }

  /** Mark Joey's latest finished reply: regenerate applies to it, and phones show its tools. */
  markLatest() {
    const rows = this.log.querySelectorAll(".msg");
    const last = rows[rows.length - 1];
    const latest = last?.matches(".msg--joey[data-state=done]") ? last : null;
    const marked = this.log.querySelector(".msg[data-latest]");
    if (marked === latest) return;
    if (marked) delete marked.dataset.latest;
    if (latest) latest.dataset.latest = "";
  }

  setBusy(busy) {
    // Screen readers announce the finished reply once instead of every chunk.
    this.log.setAttribute("aria-busy", busy ? "true" : "false");
  }
}
