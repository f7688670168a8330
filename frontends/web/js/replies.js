// The buttons under Joey's replies: copy the text, or ask for another answer (regenerate).

import { replyActions, view } from "./context.js";
import { enqueueRegenerate } from "./outbox.js";
import { awaiting, queue } from "./queue.js";
import { refresh } from "./status.js";

const CONFIRM_MS = 1500;

async function writeClipboard(handle, text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (an insecure origin) or no permission: select it, so Ctrl+C works.
    const range = document.createRange();
    range.selectNodeContents(handle.textNode);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return false;
  }
}

async function copy(handle) {
  const button = handle.tools.querySelector(".tool--copy");
  const copied = await writeClipboard(handle, handle.textNode.textContent.trim());
  button.textContent = copied ? "Copied" : "Selected";
  setTimeout(() => { button.textContent = "Copy"; }, CONFIRM_MS);
}

function regenerate(handle) {
  // Only the latest reply, and only while nothing else is going on: the server answers the last message.
  if (handle.row.dataset.latest === undefined || awaiting() || queue.waiting.length) return;
  enqueueRegenerate(handle.row.dataset.messageId);
  view.setMeta(handle, "");
  refresh();
}

export function bindReplies() {
  Object.assign(replyActions, { copy, regenerate });
}
