// Your name, set once: kept in this browser and sent as the session's name (open) and with each
// message, so Joey can call you by it from your next message on, in this chat and new ones.

import { loadName, saveName } from "./store.js";

const MAX_NAME_CHARS = 32; // the server's default max_name_chars: a longer name is refused

let name = loadName();

/** `frame` with the name, when one is set (the server takes it as the speaker of that turn). */
export const named = (frame) => (name ? { ...frame, name } : frame);

export function bindSettings() {
  const form = document.getElementById("name-form");
  const input = document.getElementById("name-input");
  const note = document.getElementById("name-saved");
  input.maxLength = MAX_NAME_CHARS;
  input.value = name;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    name = input.value.trim().slice(0, MAX_NAME_CHARS);
    input.value = name;
    saveName(name);
    note.textContent = name ? `Joey will call you ${name}.` : "Joey will not use a name.";
  });
}
