"""OpenAI messages as a hub conversation: the turns so far, and the message Joey answers now.

- ``user`` and ``assistant`` messages become the session's turns, in order; Joey speaks the
  assistant ones.
- A user turn is spoken by the message's ``name``, else by the request's ``user`` (when it is a
  display name: 1 to ``max_name_chars`` characters), else by the default name, as in a group chat
  of the WebSocket protocol.
- A ``system`` (or ``developer``) message is a scenario note: a user-side turn spoken by
  ``Scene``, where the client put it. Joey's own system prompt and character sheet always open
  the prompt (model/prompt.py), so a client can set a scene but never replace who Joey is. Notes
  after the last user message (SillyTavern's post-history instructions) go just before it, so
  the conversation still ends with what Joey answers.
- The conversation must end with a user message: Joey answers people, he does not continue his
  own line. Empty messages are skipped, except the last user message, which is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontends.openai.errors import bad_request, too_large
from frontends.openai.request import ChatRequest, Message

SCENE_SPEAKER = "Scene"


@dataclass(frozen=True)
class Conversation:
    history: tuple[dict, ...]  # the turns before the last user message, as Session.history holds them
    text: str  # the last user message: what Joey answers
    name: str | None  # who said it (None: the session's user)
    user_name: str | None  # the session's user: the request's ``user``, when it is a display name


def to_conversation(chat: ChatRequest, max_message_chars: int, max_name_chars: int) -> Conversation:
    """``chat``'s messages as a hub conversation, or an APIError (400, 413) saying why not."""
    messages = chat.messages
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise bad_request("the conversation has no user message for Joey to answer", "invalid_value", "messages")
    after = messages[last + 1:]
    if any(m.role != "system" for m in after):
        raise bad_request("the conversation must end with a user message: Joey answers it", "invalid_value",
                          f"messages[{len(messages) - 1}]")
    final = messages[last]
    if not final.text.strip():
        raise bad_request("the last user message is empty", "invalid_value", f"messages[{last}].content")
    if len(final.text) > max_message_chars:
        # The limit every frontend's message has (the WebSocket protocol's message_too_long).
        raise too_large(f"the last user message is {len(final.text)} characters; the limit is {max_message_chars}",
                        "message_too_long", f"messages[{last}].content")
    history = tuple(turn for i, m in enumerate((*messages[:last], *after)) if (turn := _turn(m, i)) is not None)
    user = chat.user.strip() if chat.user else None
    return Conversation(history, final.text, final.name, user if user and len(user) <= max_name_chars else None)


def _turn(message: Message, index: int) -> dict | None:
    """One message as a Session.history entry (its message id is only its place here)."""
    if not message.text.strip():
        return None
    turn = {"role": "joey" if message.role == "assistant" else "user", "text": message.text, "message_id": f"m{index}"}
    if message.role == "system":
        return {**turn, "name": SCENE_SPEAKER}
    return {**turn, "name": message.name} if message.role == "user" and message.name else turn
