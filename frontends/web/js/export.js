// Export the conversation on the page as Markdown or JSON: built here, from what the page shows
// (who said it, the text, when), and downloaded as a file; nothing goes to the server.

import { ui } from "./context.js";

const SPEAKERS = { user: "You", joey: "Joey" };

/** The messages said so far, oldest first: queued ones are not said yet. */
function messages() {
  return Array.from(ui.log.querySelectorAll(".msg[data-state=done], .msg[data-state=streaming]"), (row) => ({
    speaker: SPEAKERS[row.dataset.role] || row.dataset.role,
    text: row.querySelector(".msg__text").textContent.trim(),
    time: row.querySelector("time.msg__time")?.dateTime || null,
  })).filter((m) => m.text);
}

function markdown(list) {
  const lines = ["# Chat with Joey", ""];
  for (const m of list) {
    lines.push(`**${m.speaker}**${m.time ? ` (${m.time})` : ""}:`, "", m.text, "");
  }
  return lines.join("\n");
}

function download(name, type, body) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000); // after the browser has started the download
}

function exportAs(format) {
  const list = messages();
  if (!list.length) return;
  const stamp = new Date().toISOString().slice(0, 10);
  if (format === "json") {
    const body = JSON.stringify({ exported: new Date().toISOString(), messages: list }, null, 2);
    download(`joey-chat-${stamp}.json`, "application/json", body);
  } else {
    download(`joey-chat-${stamp}.md`, "text/markdown", markdown(list));
  }
}

export function bindExport() {
  const buttons = document.querySelectorAll("#export [data-format]");
  for (const node of buttons) node.addEventListener("click", () => exportAs(node.dataset.format));
  // Only a chat with something in it can be exported: checked as the dialog opens.
  ui.chatsButton.addEventListener("click", () => {
    const empty = !messages().length;
    for (const node of buttons) node.disabled = empty;
  });
}
