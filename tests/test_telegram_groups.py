"""The Telegram adapter in groups and with what is not a person talking to Joey.

Real python-telegram-bot against the fake Bot API, in both modes (in-process and WebSocket).
"Not answered" is always checked after a positive signal: a later message of the same chat
was answered (replies in a chat go out in order), or every update was taken and handled.
"""

from __future__ import annotations

import pytest

from frontends.telegram import texts
from tests.conftest import wait_until
from tests.telegram_fixtures import Bot, all_handled, joey_texts, tg_config, user_texts
from tests.telegram_fixtures import bot, fake, mode  # noqa: F401  (fixtures: pytest finds them by name here)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def test_in_a_group_joey_answers_when_addressed_and_knows_who_speaks(bot, fake, server):
    group = -600
    said = [
        ("Rachel", "Anyone want coffee?", {}),  # not for Joey
        ("Monica", "@joey_test_bot how you doin'?", {}),  # a mention
        ("Rachel", "I'm fine, thanks", {"reply_to_bot": True}),  # a reply to one of his messages
        ("Chandler", "What do you think, joey?", {}),  # his name
        ("Phoebe", "Ross is late again", {}),  # not for Joey
        ("Ross", "Bye Joey", {}),
    ]
    for name, text, extra in said:
        fake.user_message(group, text, name, chat_type="group", **extra)
    sent = await fake.wait_texts(group, 4)
    session = bot.session(group)
    assert sent == joey_texts(session)  # the last one answered, so the two ignored ones are settled
    assert user_texts(session) == ["how you doin'?", "I'm fine, thanks", "What do you think, joey?", "Bye Joey"]
    assert [h.get("name") for h in session.history if h["role"] == "user"] == ["Monica", "Rachel", "Chandler", "Ross"]
    # The prompt builder gets each line under its own speaker's name. (The tiny model's long
    # gibberish replies would push early lines out of its 256-token context, so the prompt is
    # built from the people's lines.)
    people = [t for t in session.turns() if t.speaker != "Joey"]
    assert [t.speaker for t in people] == ["Monica", "Rachel", "Chandler", "Ross"]
    gen = server.app.state.generator
    prompt = gen.tokenizer.decode(gen.prompt_ids(people, server.hub.params))
    assert "Monica: how you doin'?" in prompt and "Rachel: I'm fine, thanks" in prompt
    assert "Chandler: What do you think, joey?" in prompt and "coffee" not in prompt
    # In a group each reply quotes the message it answers.
    assert all(p.get("reply_parameters") for p in fake.sent(group))


async def test_service_messages_and_channel_posts_get_no_answer(bot, fake):
    group, channel = -700, -100700
    emily = {"id": 99, "is_bot": False, "first_name": "Emily"}
    fake.user_message(group, None, "Ross", chat_type="group", new_chat_members=[emily])
    fake.user_message(group, None, "Emily", chat_type="group", left_chat_member=emily)
    fake.user_message(group, None, "Ross", chat_type="group", new_chat_title="Central Perk 2")
    fake.user_message(channel, "Joey, a post for everyone", "Gunther", chat_type="channel", kind="channel_post")
    fake.user_message(group, "Joey?", "Ross", chat_type="group")
    await fake.wait_texts(group, 1)
    assert await wait_until(lambda: all_handled(fake, bot.config), 30)
    assert fake.texts(group) == joey_texts(bot.session(group))
    assert fake.texts(channel) == [] and not fake.sent(channel, "sendChatAction")
    assert user_texts(bot.session(group)) == ["Joey?"]


async def test_whitespace_gets_a_hint_not_an_error(bot, fake):
    chat, group = 808, -800
    fake.user_message(chat, " \u200b\t ", "Gunther")  # spaces and a zero-width space: nothing visible
    fake.user_message(group, "@joey_test_bot", "Monica", chat_type="group")  # a bare mention
    assert await fake.wait_texts(chat, 1) == [texts.NOTHING_SAID]
    assert await fake.wait_texts(group, 1) == [texts.NOTHING_SAID]
    fake.user_message(chat, "Hi", "Gunther")
    sent = await fake.wait_texts(chat, 2)
    assert sent[1] == joey_texts(bot.session(chat))[0] and user_texts(bot.session(chat)) == ["Hi"]
    assert texts.TROUBLE not in fake.texts(chat) + fake.texts(group)


async def test_a_group_that_becomes_a_supergroup_is_followed(bot, fake):
    group, supergroup = -500, -100500
    fake.user_message(group, "Joey, hi!", "Rachel", chat_type="group")
    await fake.wait_texts(group, 1)
    session = bot.session(group)
    fake.migrate(group, supergroup)
    # Said in the group just before the move: sending there fails with migrate_to_chat_id.
    fake.user_message(group, "Joey, you there?", "Ross", chat_type="group")
    assert await fake.wait_texts(supergroup, 1) == joey_texts(session)[1:]
    fake.user_message(supergroup, "Joey, this is the new group", "Monica", chat_type="supergroup")
    await fake.wait_texts(supergroup, 2)
    assert bot.session(supergroup) is session
    assert user_texts(session) == ["Joey, hi!", "Joey, you there?", "Joey, this is the new group"]

    # The other ways Telegram tells: a service message in the old group ("migrate_to") or in
    # the new one ("migrate_from"), before anything is sent.
    for old, new, where in ((-501, -100501, "old"), (-502, -100502, "new")):
        fake.user_message(old, "Joey!", "Phoebe", chat_type="group")
        await fake.wait_texts(old, 1)
        first = bot.session(old)
        if where == "old":
            fake.user_message(old, None, "Phoebe", chat_type="group", migrate_to_chat_id=new)
            assert await wait_until(lambda: all_handled(fake, bot.config), 30)  # another chat: not ordered with it
        else:
            fake.user_message(new, None, "Phoebe", chat_type="supergroup", migrate_from_chat_id=old)
        fake.user_message(new, "Joey, still me", "Phoebe", chat_type="supergroup")
        await fake.wait_texts(new, 1)
        assert bot.session(new) is first and user_texts(first) == ["Joey!", "Joey, still me"]


async def test_only_group_admins_may_reset_unless_configured_otherwise(server, fake, tmp_path):
    group = -900
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path)).start()
    try:
        fake.make_admin(group, "Monica")
        fake.user_message(group, "Joey, how you doin'?", "Rachel", chat_type="group")
        fake.user_message(group, "/reset", "Rachel", chat_type="group")  # a member
        sent = await fake.wait_texts(group, 2)
        assert sent[1] == texts.RESET_ADMINS_ONLY and user_texts(running.session(group)) == ["Joey, how you doin'?"]
        fake.user_message(group, "/reset", "Monica", chat_type="group")  # an administrator
        anonymous = {"id": group, "type": "group", "title": "Central Perk"}
        fake.user_message(group, "/reset", "Group", chat_type="group", sender_chat=anonymous)  # an anonymous admin
        assert (await fake.wait_texts(group, 4))[2:] == [texts.RESET_DONE, texts.RESET_DONE]
        assert list(running.session(group).history) == []
    finally:
        await running.stop()
    running = await Bot("out-of-process", server, tg_config(fake, tmp_path, reset_by="anyone")).start()
    try:
        fake.user_message(group, "/reset", "Rachel", chat_type="group")
        assert (await fake.wait_texts(group, 5))[4] == texts.RESET_DONE
    finally:
        await running.stop()


async def test_one_member_flooding_a_group_is_slowed_down_not_everyone(server, fake, tmp_path):
    group = -910
    config = tg_config(fake, tmp_path, group_user_messages=2, group_user_window=60)
    running = await Bot("out-of-process", server, config).start()
    try:
        for n in range(5):
            fake.user_message(group, f"Joey, number {n}", "Chandler", chat_type="group")
        fake.user_message(group, "Joey, hi!", "Rachel", chat_type="group")
        sent = await fake.wait_texts(group, 4)
        assert await wait_until(lambda: all_handled(fake, config), 30)
        assert len(fake.texts(group)) == 4  # two answers, one notice, Rachel's answer
        slow_down = texts.MEMBER_SLOW_DOWN.split("{wait}")[0]
        assert sent[2].startswith(slow_down) and sent[2].endswith(("a minute, I'm not going anywhere.",
                                                                   "59 seconds, I'm not going anywhere."))
        session = running.session(group)
        assert user_texts(session) == ["Joey, number 0", "Joey, number 1", "Joey, hi!"]
        assert [t for t in sent if not t.startswith(slow_down)] == joey_texts(session)
    finally:
        await running.stop()


async def test_only_allowed_chats_are_answered_and_blocked_ones_never(server, fake, tmp_path):
    mine, stranger, blocked, group, supergroup = 1401, 1402, 1403, -1404, -1001404
    config = tg_config(fake, tmp_path, allowed_chats=f"{mine}, {blocked},{group}", blocked_chats=str(blocked))
    running = await Bot("out-of-process", server, config).start()
    try:
        fake.user_message(stranger, "Hi Joey", "Gunther")
        fake.user_message(blocked, "Hi Joey", "Janice")
        fake.user_message(mine, "Hi Joey", "Joey's mom")
        # An allowed group that became a supergroup (a new id) is still served.
        fake.user_message(supergroup, None, "Phoebe", chat_type="supergroup", migrate_from_chat_id=group)
        fake.user_message(supergroup, "Joey, still us", "Phoebe", chat_type="supergroup")
        await fake.wait_texts(mine, 1)
        await fake.wait_texts(supergroup, 1)
        assert await wait_until(lambda: all_handled(fake, config), 30)
        assert fake.texts(stranger) == fake.texts(blocked) == []
        assert not fake.sent(stranger, "sendChatAction") and not fake.sent(blocked, "sendChatAction")
        assert set(running.adapter.clients) == {mine, supergroup}
    finally:
        await running.stop()


async def test_in_a_forum_replies_typing_and_notices_go_to_the_topic(server, fake, tmp_path):
    forum = -100777
    config = tg_config(fake, tmp_path, group_user_messages=1)
    running = await Bot("out-of-process", server, config).start()
    try:
        def said(text: str, name: str, thread: int | None) -> None:
            topic = {"message_thread_id": thread, "is_topic_message": True} if thread else {}
            fake.user_message(forum, text, name, chat_type="supergroup", **topic)

        said("Joey, pizza?", "Ross", 55)
        said("Joey, more pizza?", "Ross", 55)  # over his limit: the notice goes to his topic too
        said("Joey, hi", "Rachel", 66)
        said("Joey, general news", "Monica", None)  # the General topic: no thread id
        sent = await fake.wait_texts(forum, 4)
        assert await wait_until(lambda: all_handled(fake, config), 30)
        topics = [p.get("message_thread_id") for p in fake.sent(forum)]
        assert topics == ["55", "55", "66", None] and sent[1].startswith(texts.MEMBER_SLOW_DOWN.split("{")[0])
        assert {p.get("message_thread_id") for p in fake.sent(forum, "sendChatAction")} == {"55", "66", None}
    finally:
        await running.stop()
