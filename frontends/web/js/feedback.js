// Thumbs up / down under Joey's replies, kept on the server (protocol: feedback): the buttons
// show what the server holds, from its feedback frame or the session's history after a reload.

import { replyActions, socket, ui } from "./context.js";

const RATINGS = [
  { rating: "up", label: "Good reply", path: "M7 11v9H4v-9zm2 9h8.2a2 2 0 0 0 2-1.6l1.2-6A2 2 0 0 0 18.4 10H14l.8-4a1.5 1.5 0 0 0-2.7-1.2L9 10z" },
  { rating: "down", label: "Bad reply", path: "M7 13V4H4v9zm2-9h8.2a2 2 0 0 1 2 1.6l1.2 6A2 2 0 0 1 18.4 14H14l.8 4a1.5 1.5 0 0 1-2.7 1.2L9 14z" },
];
const SVG = "http://www.w3.org/2000/svg";

function icon(path) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon icon--small");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const shape = document.createElementNS(SVG, "path");
  shape.setAttribute("d", path);
  shape.setAttribute("fill", "currentColor");
  svg.append(shape);
  return svg;
}

/** Show `rating` ("up", "down" or null) on the reply to `messageId`, if it is on the page. */
function show(messageId, rating) {
  const row = ui.log.querySelector(`.msg--joey[data-message-id="${CSS.escape(messageId)}"]`);
  for (const node of row?.querySelectorAll(".tool--rate") || []) {
    node.setAttribute("aria-pressed", String(node.dataset.rating === rating));
  }
}

/** The toggles for one of Joey's replies: pressing the active one clears the rating. */
function rateButtons(role, handle) {
  if (role !== "joey") return [];
  return RATINGS.map(({ rating, label, path }) => {
    const node = document.createElement("button");
    node.type = "button";
    node.className = "tool tool--rate";
    node.dataset.rating = rating;
    node.setAttribute("aria-label", label);
    node.setAttribute("aria-pressed", "false");
    node.title = label;
    node.append(icon(path));
    node.addEventListener("click", () => {
      const next = node.getAttribute("aria-pressed") === "true" ? null : rating;
      // Shown once the server has kept it (its feedback frame), so the page never claims more.
      socket.send({ type: "feedback", message_id: handle.row.dataset.messageId, rating: next });
    });
    return node;
  });
}

/** Ratings held in the session frame's history: shown after a reload, or a resume. */
export function showRatings(history) {
  for (const turn of history) {
    if (turn.role === "joey" && turn.message_id) show(turn.message_id, turn.rating ?? null);
  }
}

export function bindFeedback() {
  replyActions.toolMakers.push(rateButtons);
  socket.addEventListener("frame", (event) => {
    const frame = event.detail.frame;
    if (frame.type === "feedback" && typeof frame.message_id === "string") show(frame.message_id, frame.rating ?? null);
  });
}
