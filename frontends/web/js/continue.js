// Continue (protocol: continue): after Stop, or a reply cut by the length limit, Joey goes on with
// the same reply. Offered under his latest reply only, since the server continues the last answer.

import { socket, ui, view } from "./context.js";
import { connection } from "./phase.js";
import { awaiting, queue } from "./queue.js";
import { refresh } from "./status.js";

const CONTINUABLE = new Set(["cancelled", "length"]);

function goOn(handle) {
  if (!connection.ready || awaiting() || queue.waiting.length) return;
  if (!socket.send({ type: "continue", message_id: handle.row.dataset.messageId })) return;
  view.setMeta(handle, "");
  ui.input.focus(); // the button went away under the focus: keep the user's place
  refresh();
}

/** The note under Joey's finished reply: "Stopped", and Continue when it was cut short. */
export function offerContinue(handle, finish) {
  handle.row.dataset.finish = finish;
  if (!CONTINUABLE.has(finish)) {
    view.setMeta(handle, "");
    return;
  }
  view.setMeta(handle, finish === "cancelled" ? "Stopped" : "", { label: "Continue", onClick: () => goOn(handle) });
  const link = handle.meta.querySelector(".link-button");
  link.classList.add("continue");
  link.setAttribute("aria-label", "Continue Joey's reply");
}
