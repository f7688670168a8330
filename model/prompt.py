"""The one prompt builder, shared by training and serving.

A conversation is rendered as one sitcom scene:

    <|scene|><|turn|>Chandler: So does he have a hump?<|eot|><|turn|>Joey:

and the model continues with `` Joey's line<|eot|>``. Speaker turns and end of turn are special
tokens of the project's own tokenizer, so a reply can stop cleanly at ``<|eot|>`` and can never
run on into the other person's line. Bases without those tokens (for example a stock
tinyllama-15M from the hub) get the same scene as plain ``Name: text`` lines, and a reply stops
at the end of its line.

Training builds Joey pairs with :func:`build_prompt` + :func:`reply_ids` and serving builds its
prompt with :func:`build_prompt`, so the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

PAD, SCENE, TURN, EOT = "<|pad|>", "<|scene|>", "<|turn|>", "<|eot|>"
SPECIAL_TOKENS = [PAD, SCENE, TURN, EOT]
BOT_NAME = "Joey"
# The person chatting is named by their display name (a Telegram first name, the name the web
# page sends); with none, this fixed role name is used. Training renames partners the same way.
DEFAULT_USER_NAME = "Friend"


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


def has_turn_tokens(tokenizer) -> bool:
    return TURN in tokenizer.get_vocab() and EOT in tokenizer.get_vocab()


def render_turn(turn: Turn, special: bool) -> str:
    if special:
        return f"{TURN}{turn.speaker}: {turn.text}{EOT}"
    return f"{turn.speaker}: {turn.text}\n"


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def scene_ids(tokenizer, turns: list[Turn]) -> list[int]:
    """A whole scene as pre-training tokens."""
    special = has_turn_tokens(tokenizer)
    head = _encode(tokenizer, SCENE) if special else []
    return head + [t for turn in turns for t in _encode(tokenizer, render_turn(turn, special))]


def build_prompt(tokenizer, turns: list[Turn], max_tokens: int, bot_name: str = BOT_NAME) -> list[int]:
    """Token ids asking ``bot_name`` to speak next, from the most recent turns that fit.

    Older turns are dropped whole; if even the last turn is too long, its start is cut, because
    the end of what was just said matters most for the answer.
    """
    special = has_turn_tokens(tokenizer)
    head = _encode(tokenizer, SCENE) if special else []
    tail = _encode(tokenizer, f"{TURN}{bot_name}:" if special else f"{bot_name}:")
    budget = max_tokens - len(head) - len(tail)
    if budget <= 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for a turn")
    body: list[int] = []
    for turn in reversed(turns):
        ids = _encode(tokenizer, render_turn(turn, special))
        if len(body) + len(ids) > budget:
            if not body:
                body = ids[-budget:]
            break
        body = ids + body
    return head + body + tail


def reply_ids(tokenizer, reply: str) -> list[int]:
    """The tokens the model should produce for ``reply``, end of turn included."""
    special = has_turn_tokens(tokenizer)
    return _encode(tokenizer, f" {reply}{EOT}" if special else f" {reply}\n")


def stop_token_ids(tokenizer) -> set[int]:
    """Tokens that end a reply: end of turn, and a new turn (never speak for the other person)."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in (EOT, TURN, SCENE, PAD) if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def stop_text(tokenizer) -> str | None:
    """Plain-text bases end a line with a newline; special-token bases need no stop text."""
    return None if has_turn_tokens(tokenizer) else "\n"
