"""Continue: Joey goes on with a reply cut short (stopped, or at the length limit), as the same
reply. The hub, the prompt (the reply's start left open), the generator and a real server."""

from __future__ import annotations

import asyncio

import pytest

from backend.protocol import ErrorCode, ProtocolError
from model.engine import FinishReason
from model.prompt import IM_END, Turn, build_prompt, reply_start_ids
from tests.conftest import connect
from tests.test_hub import ScriptedGenerator, ScriptedReply, attached, drain_until
from tests.test_hub import make_hub  # noqa: F401  (a fixture: pytest finds it by name here)


class ContinuingGenerator(ScriptedGenerator):
    """The first reply is cut by the length limit; a continuation says the rest. Records each
    reply_start it was given."""

    def __init__(self, delay: float = 0.0):
        super().__init__(delay)
        self.starts: list[str] = []

    def stream(self, turns, params, reply_start: str = ""):
        self.calls.append(list(turns))
        self.starts.append(reply_start)
        if reply_start:
            return ScriptedReply([" and", " the rest."], self.delay)
        return ScriptedReply(["Well,", " you", " know"], self.delay, FinishReason.LENGTH)


async def test_continue_goes_on_with_the_same_reply_and_history_ends_with_the_whole_text(make_hub):
    hub, gen = make_hub(generator=ContinuingGenerator())
    session, out = attached(hub)
    hub.send(session, "q", "Tell me about the sandwich")
    cut = (await drain_until(out, "reply_end"))[-1]
    assert cut["finish_reason"] == "length" and session.history[-1]["finish_reason"] == "length"

    hub.continue_reply(session, "q")
    frames = await drain_until(out, "reply_end")
    start, chunks, end = frames[0], frames[1:-1], frames[-1]
    assert start == {"type": "reply_start", "seq": start["seq"], "message_id": "q", "continue": True}
    assert [c["text"] for c in chunks] == [" and", " the rest."]  # only the new text streams
    assert end["text"] == "Well, you know and the rest." and end["finish_reason"] == "stop"
    assert end["text"] == cut["text"] + "".join(c["text"] for c in chunks)
    assert session.history[-1] == {"role": "joey", "text": end["text"], "message_id": "q"}
    assert len(session.history) == 2 and session.answered["q"] == end
    # The model was asked without Joey's cut turn, which it is given as the open start of its reply.
    assert [t.text for t in gen.calls[-1]] == ["Tell me about the sandwich"] and gen.starts[-1] == cut["text"]


async def test_nothing_to_continue_after_a_finished_reply_or_a_later_message(make_hub):
    hub, gen = make_hub(generator=ContinuingGenerator())
    session, out = attached(hub)
    with pytest.raises(ProtocolError) as err:
        hub.continue_reply(session)
    assert err.value.code is ErrorCode.NOTHING_TO_CONTINUE
    hub.send(session, "q", "hi")
    await drain_until(out, "reply_end")
    hub.continue_reply(session)
    await drain_until(out, "reply_end")
    before = [dict(t) for t in session.history]
    for message_id in (None, "q", "other"):  # it ended its turn now
        with pytest.raises(ProtocolError) as err:
            hub.continue_reply(session, message_id)
        assert err.value.code is ErrorCode.NOTHING_TO_CONTINUE
    assert [dict(t) for t in session.history] == before and len(gen.calls) == 2


async def test_a_stopped_continuation_keeps_what_it_said_and_can_go_on_again(make_hub):
    hub, gen = make_hub(generator=ContinuingGenerator(delay=0.2))
    session, out = attached(hub)
    hub.send(session, "q", "hi")
    await drain_until(out, "reply_end")
    hub.continue_reply(session)
    await drain_until(out, "chunk")
    with pytest.raises(ProtocolError) as err:
        hub.continue_reply(session)
    assert err.value.code is ErrorCode.BUSY
    hub.cancel(session)
    end = (await drain_until(out, "reply_end"))[-1]
    assert end["finish_reason"] == "cancelled" and end["text"].startswith("Well, you know and")
    assert session.history[-1]["text"] == end["text"] and session.history[-1]["finish_reason"] == "cancelled"
    hub.continue_reply(session)
    await session.reply.task
    assert gen.starts[-1] == end["text"]


async def test_continuing_a_chosen_version_changes_that_version(make_hub):
    hub, _ = make_hub(generator=ContinuingGenerator())
    session, out = attached(hub)
    hub.send(session, "q", "hi")
    await session.reply.task
    hub.regenerate(session, "q")
    await session.reply.task
    hub.choose_version(session, "q", 0)
    hub.continue_reply(session, "q")
    await session.reply.task
    turn = session.history[-1]
    assert turn["version"] == 0 and turn["text"] == "Well, you know and the rest."
    assert turn["versions"] == [{"text": turn["text"]}, {"text": "Well, you know", "finish_reason": "length"}]


def _tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model[0]))


def test_the_prompt_ends_with_the_reply_start_left_open(tiny_model):
    from model.prompt import TURN, EOT

    tok = _tokenizer(tiny_model)
    turns = [Turn("Ross", "Hi"), Turn("Joey", "Hey"), Turn("Ross", "Pizza?")]
    ids = build_prompt(tok, turns, 200, reply_start="Joey doesn't")
    assert ids == build_prompt(tok, turns, 200) + reply_start_ids(tok, "Joey doesn't")
    assert tok.decode(ids).endswith(f"{TURN}Ross: Pizza?{EOT}{TURN}Joey: Joey doesn't")
    short = build_prompt(tok, [Turn("Ross", f"line {i}") for i in range(40)], 60, reply_start="Joey doesn't share")
    assert len(short) <= 60  # the reply's start counts in the budget: older turns make room


def test_chatml_order_is_history_note_ask_then_the_reply_start():
    from tests.test_prompt import _smollm2_tokenizer

    tok = _smollm2_tokenizer()
    text = tok.decode(build_prompt(tok, [Turn("Ross", "Hi")], 1000, note="Joey's agent is Estelle.",
                                   reply_start="Pizza is"))
    assert text.endswith("user\nRoss: Hi<|im_end|>\n<|im_start|>system\nJoey's agent is Estelle.<|im_end|>\n"
                         "<|im_start|>assistant\nPizza is")
    assert not text.endswith(IM_END)


def test_the_continuation_is_joined_with_the_space_the_engine_stripped():
    from model.continuation import joint
    from tests.test_prompt import _smollm2_tokenizer

    tok = _smollm2_tokenizer()
    assert joint(tok, "He said", "it twice") == " "  # a new word
    assert joint(tok, "Tribb", "iani!") == ""  # the rest of a word
    assert joint(tok, "He said", ", twice") == ""  # punctuation goes on the word before
    assert joint(tok, "Wait.", "Pizza") == " " and joint(tok, "Wait ", "Pizza") == ""


async def test_the_generator_passes_the_reply_start_to_the_prompt_and_joins_the_new_text(tiny_model):
    from model.generator import JoeyGenerator
    from model.sampling import GenerationParams

    class Engine:  # what the generator submits, and a reply whose leading space the engine stripped
        def submit(self, prompt, params):
            self.prompt = prompt
            return ScriptedReply(["more", " text"], 0)

    engine, tok = Engine(), _tokenizer(tiny_model)
    gen = JoeyGenerator(engine, tok, 256)
    turns, params = [Turn("Ross", "Pizza?")], GenerationParams(max_new_tokens=6)
    assert gen.prompt_ids(turns, params, reply_start="Joey") == gen.prompt_ids(turns, params) + reply_start_ids(
        tok, "Joey")
    stream = gen.stream(turns, params, reply_start="Joey likes")
    assert engine.prompt == gen.prompt_ids(turns, params, reply_start="Joey likes")
    assert "".join([chunk async for chunk in stream]) == " more text"
    assert stream.finish_reason is FinishReason.STOP and stream.tokens == 2
    plain = gen.stream(turns, params)
    assert engine.prompt == gen.prompt_ids(turns, params) and "".join([c async for c in plain]) == "more text"


async def test_continue_over_the_websocket_with_the_real_model(make_server):
    server = make_server(max_new_tokens=4, min_new_tokens=4)
    async with connect(server.url) as client:
        await client.open()
        cut, _ = await client.ask("Tell me about the sandwich", "m1")
        assert cut["finish_reason"] == "length"
        await client.send(type="continue", message_id="m1")
        start, _ = await client.until("reply_start")
        end, frames = await client.until("reply_end")
        assert start["continue"] is True and start["message_id"] == "m1"
        chunks = "".join(f["text"] for f in frames if f["type"] == "chunk")
        assert end["text"] == cut["text"] + chunks and len(end["text"]) > len(cut["text"])
        assert end["tokens"] == 4 and end["finish_reason"] == "length"  # max_new_tokens holds for the continuation
        await client.send(type="regenerate", message_id="m1")
        await client.until("reply_end")
        await client.send(type="message", id="m2", text="And then?")
        await client.until("reply_end")
        await client.send(type="continue", message_id="m1")  # not the last message any more
        error, _ = await client.until("error")
        assert error["code"] == "nothing_to_continue"
    session = list(server.hub.sessions.values())[-1]
    assert session.history[1]["versions"][0]["text"] == end["text"]
