"""The one prompt builder, shared by training and serving.

A conversation is a list of :class:`Turn` (speaker, text). How it is rendered depends on the
tokenizer, and :func:`prompt_format` decides once:

* ``CHATML`` (SmolLM2 and other instruct bases): the character's system prompt (its system line
  and sheet: model/character.py), then one message per turn. Joey's own lines are ``assistant`` messages; everyone else's are ``user`` messages
  written ``Name: text``, so each line carries its speaker (a group chat has several)::

      <|im_start|>system\\nYou are Joey ... (the sheet)<|im_end|>\\n<|im_start|>user\\nRoss: Pizza?<|im_end|>\\n
      <|im_start|>assistant\\n

  and the model continues with ``Joey's line<|im_end|>``.
* ``SCENE`` (the mini preset's own tokenizer, too small a context for a sheet): ``<|scene|><|turn|>Ross: Pizza?<|eot|><|turn|>Joey:``
  and the model continues with `` Joey's line<|eot|>``.
* ``PLAIN`` (bases with neither): the same scene as ``Name: text`` lines; a reply ends at ``\\n``.

Control tokens are looked up by id and never tokenized from text, and user text is tokenized
with special tokens split, so a message containing ``<|im_end|>`` or ``<|turn|>Joey:`` stays
plain text and can never forge a turn.
"""

from __future__ import annotations

import enum
import weakref
from dataclasses import dataclass

from model.character import Character, default_character

PAD, SCENE, TURN, EOT = "<|pad|>", "<|scene|>", "<|turn|>", "<|eot|>"
SPECIAL_TOKENS = [PAD, SCENE, TURN, EOT]
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
BOT_NAME = "Joey"
# The person chatting is named by their display name (a Telegram first name, the name the web
# page sends); with none, this fixed role name is used. Training renames partners the same way.
DEFAULT_USER_NAME = "Friend"


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


class PromptFormat(enum.Enum):
    CHATML = "chatml"
    SCENE = "scene"
    PLAIN = "plain"


# get_vocab() builds a fresh dict of the whole vocabulary (49k entries for SmolLM2) on every
# call, so what the builder needs from it is read once per tokenizer.
_CONTROLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CONTROL_NAMES = (PAD, SCENE, TURN, EOT, IM_START, IM_END, ENDOFTEXT)


def _controls(tokenizer) -> dict[str, int]:
    if tokenizer not in _CONTROLS:
        vocab = tokenizer.get_vocab()
        _CONTROLS[tokenizer] = {t: vocab[t] for t in _CONTROL_NAMES if t in vocab}
    return _CONTROLS[tokenizer]


def prompt_format(tokenizer) -> PromptFormat:
    controls = _controls(tokenizer)
    if IM_START in controls and IM_END in controls:
        return PromptFormat.CHATML
    if TURN in controls and EOT in controls:
        return PromptFormat.SCENE
    return PromptFormat.PLAIN


def _control(tokenizer, token: str) -> list[int]:
    return [_controls(tokenizer)[token]]


def _text(tokenizer, text: str) -> list[int]:
    """Plain text: a special token's spelling inside it is tokenized as ordinary characters."""
    return tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)


def _chatml_message(tokenizer, role: str, text: str) -> list[int]:
    return (_control(tokenizer, IM_START) + _text(tokenizer, f"{role}\n{text}")
            + _control(tokenizer, IM_END) + _text(tokenizer, "\n"))


def render_turn(tokenizer, turn: Turn, bot_name: str = BOT_NAME) -> list[int]:
    """One turn as token ids, exactly as it appears inside a prompt or a training scene."""
    fmt = prompt_format(tokenizer)
    if fmt is PromptFormat.CHATML:
        if turn.speaker == bot_name:
            return _chatml_message(tokenizer, "assistant", turn.text)
        return _chatml_message(tokenizer, "user", f"{turn.speaker}: {turn.text}")
    if fmt is PromptFormat.SCENE:
        return _control(tokenizer, TURN) + _text(tokenizer, f"{turn.speaker}: {turn.text}") + _control(tokenizer, EOT)
    return _text(tokenizer, f"{turn.speaker}: {turn.text}\n")


# Every message brings its whole conversation again, and re-tokenizing each earlier turn was a
# sixth of the event loop's time at 64 sessions: the prompt builder keeps recent turns' tokens.
_RENDERED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
RENDERED_TURNS_KEPT = 8192  # per tokenizer; a turn is a few dozen token ids


def _rendered(tokenizer, turn: Turn, bot_name: str) -> list[int]:
    kept = _RENDERED.setdefault(tokenizer, {})
    key = (turn, bot_name)
    if key in kept:
        kept[key] = kept.pop(key)  # most recently used goes last
    else:
        if len(kept) >= RENDERED_TURNS_KEPT:
            del kept[next(iter(kept))]
        kept[key] = render_turn(tokenizer, turn, bot_name)
    return kept[key]


_HEADS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def head_ids(tokenizer, character: Character) -> list[int]:
    fmt = prompt_format(tokenizer)
    if fmt is PromptFormat.CHATML:
        # The sheet is a few hundred tokens: tokenized once per tokenizer and character.
        heads = _HEADS.setdefault(tokenizer, {})
        if character.system not in heads:
            heads[character.system] = _chatml_message(tokenizer, "system", character.system)
        return list(heads[character.system])
    return _control(tokenizer, SCENE) if fmt is PromptFormat.SCENE else []


def ask_ids(tokenizer, bot_name: str) -> list[int]:
    """The tokens after which the bot speaks."""
    fmt = prompt_format(tokenizer)
    if fmt is PromptFormat.CHATML:
        return _control(tokenizer, IM_START) + _text(tokenizer, "assistant\n")
    if fmt is PromptFormat.SCENE:
        return _control(tokenizer, TURN) + _text(tokenizer, f"{bot_name}:")
    return _text(tokenizer, f"{bot_name}:")


def note_ids(tokenizer, note: str | None) -> list[int]:
    """A recalled note (model/recall.py) as a system message right before the reply's turn."""
    if not note:
        return []
    if prompt_format(tokenizer) is not PromptFormat.CHATML:
        raise ValueError("a recalled note needs a chat-template (ChatML) base")
    return _chatml_message(tokenizer, "system", note)


def scene_ids(tokenizer, turns: list[Turn], character: Character | None = None) -> list[int]:
    """A whole scene as pre-training tokens."""
    character = character or default_character()
    return head_ids(tokenizer, character) + [t for turn in turns for t in render_turn(tokenizer, turn, character.name)]


def reply_start_ids(tokenizer, reply_start: str) -> list[int]:
    """The start of the bot's reply, as :func:`reply_ids` renders it but left open (no end of turn)."""
    if not reply_start:
        return []
    return _text(tokenizer, reply_start if prompt_format(tokenizer) is PromptFormat.CHATML else f" {reply_start}")


def build_prompt(tokenizer, turns: list[Turn], max_tokens: int, character: Character | None = None,
                 note: str | None = None, reply_start: str = "") -> list[int]:
    """Token ids asking the character (the default card's, Joey, when None) to speak next, from
    the most recent turns that fit, with ``note`` (recalled sheet lines) just before its turn, and
    ``reply_start`` (a reply cut short, to be continued) as the open start of that turn.

    The system prompt, with the sheet, is always kept; older turns are dropped whole, oldest
    first; if even the last turn is too long, its start is cut, because the end of what was just
    said matters most for the answer.
    """
    character = character or default_character()
    bot_name = character.name
    head = head_ids(tokenizer, character)
    tail = note_ids(tokenizer, note) + ask_ids(tokenizer, bot_name) + reply_start_ids(tokenizer, reply_start)
    budget = max_tokens - len(head) - len(tail)
    if budget <= 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for a turn after the {len(head)}-token system prompt")
    body: list[int] = []
    for turn in reversed(turns):
        ids = _rendered(tokenizer, turn, bot_name)
        if len(body) + len(ids) > budget:
            if not body:
                body = ids[-budget:]
            break
        body = ids + body
    return head + body + tail  # new lists: the kept turns are never handed out


def reply_ids(tokenizer, reply: str) -> list[int]:
    """The tokens the model should produce for ``reply``, end of turn included."""
    fmt = prompt_format(tokenizer)
    if fmt is PromptFormat.CHATML:
        return _text(tokenizer, reply) + _control(tokenizer, IM_END)
    if fmt is PromptFormat.SCENE:
        return _text(tokenizer, f" {reply}") + _control(tokenizer, EOT)
    return _text(tokenizer, f" {reply}\n")


def stop_token_ids(tokenizer) -> set[int]:
    """Tokens that end a reply: end of turn, and a new turn (never speak for the other person)."""
    ids = set(_controls(tokenizer).values())
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def stop_text(tokenizer) -> str | None:
    """Plain-text bases end a line with a newline; special-token bases need no stop text."""
    return "\n" if prompt_format(tokenizer) is PromptFormat.PLAIN else None
