"""Joey's turn for one message, and what regenerate and continue do to it.

A regenerated reply does not throw the earlier answer away: the turn keeps every version
(``versions``, oldest first, each ``{text, finish_reason?}``) and which one is chosen
(``version``). Its ``text`` is always the chosen version's, so the prompt, the feedback file and
clients that know nothing of versions read the history as before, and the next message is
answered from the version on screen. A reply cut short (stopped, or at the length limit) carries
its ``finish_reason``; that is what lets ``continue`` go on with it. docs/protocol.md: Versions.
"""

from __future__ import annotations

from collections.abc import MutableSequence

from backend import protocol as p
from backend.session import Reply, ReplyKind, Session
from model.prompt import Turn

CONTINUABLE = ("cancelled", "length")  # a reply that did not end its turn


def last_message(session: Session, message_id: str | None, code: p.ErrorCode) -> str:
    """The last user message's id, when ``message_id`` is None or that id; else ``code``."""
    last = session.last_user_index()
    if last is None or (message_id is not None and session.history[last]["message_id"] != message_id):
        raise p.ProtocolError(code, "no user message to answer again (or it is not the last one)", message_id)
    return session.history[last]["message_id"]


def continuable(session: Session, message_id: str | None) -> tuple[str, str]:
    """The last message's id and Joey's cut reply to it; nothing_to_continue when it was not cut."""
    target = last_message(session, message_id, p.ErrorCode.NOTHING_TO_CONTINUE)
    at = _answer(session.history, target)
    if at is None or session.history[at].get("finish_reason") not in CONTINUABLE:
        raise p.ProtocolError(p.ErrorCode.NOTHING_TO_CONTINUE, "Joey's last reply was not cut short", message_id)
    return target, session.history[at]["text"]


def prompt(session: Session, reply: Reply, bot_name: str) -> tuple[list[Turn], str]:
    """The turns ``reply`` answers, and the start of the reply the model goes on from ("": none).
    A regenerate or continue is asked without Joey's turn it replaces or extends."""
    turns = session.turns(bot_name)
    if reply.kind is ReplyKind.ANSWER or _answer(session.history, reply.message_id) is None:
        return turns, ""
    return turns[:-1], reply.prefix


def record(history: MutableSequence[dict], reply: Reply, finish: str, max_versions: int) -> None:
    """Put the ended ``reply`` in the history: a new turn, a new version of it, or its longer text.
    A regenerate or continue that said nothing leaves Joey's turn as it was."""
    at = _answer(history, reply.message_id)
    if reply.kind is ReplyKind.CONTINUE:
        if at is not None and reply.parts:
            history[at] = _with_text(history[at], reply.text, finish)
        return
    if not reply.text:
        return
    turn = {"role": "joey", "text": reply.text, "message_id": reply.message_id, **_cut(finish)}
    if reply.kind is ReplyKind.REGENERATE and at is not None:
        kept = history[at].get("versions") or [_version(history[at])]
        versions = [*kept, _version(turn)][-max_versions:]
        history[at] = {**turn, "versions": versions, "version": len(versions) - 1} if len(versions) > 1 else turn
    else:
        history.append(turn)


def choose(history: MutableSequence[dict], message_id: str, version: int) -> dict:
    """Make ``version`` the chosen one of Joey's reply to ``message_id``; returns the server's
    ``version`` frame. An unknown id or version is invalid_field, and changes nothing."""
    at = next((i for i in range(len(history) - 1, -1, -1)
               if history[i]["role"] == "joey" and history[i]["message_id"] == message_id), None)
    if at is None or not 0 <= version < len(history[at].get("versions", ())):
        raise p.ProtocolError(p.ErrorCode.INVALID_FIELD, f"no version {version} of Joey's reply to {message_id!r}",
                              message_id)
    turn = history[at]
    chosen = turn["versions"][version]
    if version != turn["version"]:  # a rating was of the text rated: another version has none yet
        kept = {k: v for k, v in turn.items() if k not in ("rating", "finish_reason")}
        history[at] = {**kept, **chosen, "version": version}
    return p.version_chosen(message_id, version, chosen["text"], chosen.get("finish_reason", "stop"))


def _answer(history: MutableSequence[dict], message_id: str) -> int | None:
    """The index of Joey's turn answering ``message_id``, when it is the last turn."""
    if history and history[-1]["role"] == "joey" and history[-1]["message_id"] == message_id:
        return len(history) - 1
    return None


def _cut(finish: str) -> dict:
    return {} if finish == "stop" else {"finish_reason": finish}


def _version(turn: dict) -> dict:
    return {"text": turn["text"], **_cut(turn.get("finish_reason", "stop"))}


def _with_text(turn: dict, text: str, finish: str) -> dict:
    """``turn`` with the continued reply's whole text, in its chosen version too."""
    turn = {**{k: v for k, v in turn.items() if k != "finish_reason"}, "text": text, **_cut(finish)}
    if "versions" in turn:
        turn["versions"] = [*turn["versions"]]
        turn["versions"][turn["version"]] = _version(turn)
    return turn
