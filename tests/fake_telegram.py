"""A fake Telegram Bot API server for tests: Starlette under uvicorn on a loopback port, in a thread.

python-telegram-bot is pointed at it with ``base_url`` (``FakeTelegram.base_url``). It serves
getMe, getUpdates (long poll with offset semantics: an update is gone once a later offset is
asked for), sendMessage, sendChatAction, sendMessageDraft, setWebhook, deleteWebhook,
getChatMember (``make_admin``) and setMyCommands, records every call, and can answer the next
call of a method with an error (a 429, a 502...).
It can also turn a group into a supergroup (sendMessage to the old id then fails with
``migrate_to_chat_id``, as Telegram's does), and queue group messages from several people,
mentions, replies to the bot, service messages and channel posts. Update ids can restart lower
(``restart_update_ids``); an offset too far ahead is then served from the queue's head, as
Telegram's Bot API server does (telegram-bot-api: an offset "in the future" is ignored).
Each instance can be another bot (``bot_id``), for a state file reused with another token.
Bodies may be form-encoded (what PTB sends) or JSON. While a webhook is set, getUpdates is
refused with 409 (as Telegram does) and new updates are POSTed to the webhook instead, with its
secret token (:meth:`FakeTelegram.post_update`: to the URL set, or to where a test says it is served).

The test side is thread-safe and its waits are async, so an adapter on the test's own loop
keeps running while a test waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port
from tests.server_thread import ServerThread

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Joey", "username": "joey_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
TOO_MANY = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1}}
BAD_GATEWAY = {"ok": False, "error_code": 502, "description": "Bad Gateway"}


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz", bot_id: int = BOT_USER["id"]):
        self.token = token
        self.bot_user = {**BOT_USER, "id": bot_id}
        self.port = free_port()
        self.lock = threading.Lock()
        self.updates: list[dict] = []  # not yet confirmed by a later offset
        self.calls: list[tuple[str, dict, bool]] = []  # (method, params, answered ok) of every call
        self.failures: dict[str, list[tuple[int, dict]]] = {}
        self.holds: dict[str, list[float]] = {}  # method -> seconds to wait before answering its next calls
        self.migrated: dict[int, int] = {}  # group -> the supergroup it became
        self.webhook: dict | None = None  # setWebhook's parameters while one is set
        self.admins: dict[int, set[int]] = {}  # chat -> user ids getChatMember calls administrators
        self._user_ids: dict[str, int] = {}
        self._next_update_id = 1000  # the queue's tail: the id the next update gets
        self._message_ids = itertools.count(1)
        self._sent_ids = itertools.count(50_000)
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])
        self._server = ServerThread(app, self.port, lifespan="off", start_timeout=30)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def __enter__(self) -> "FakeTelegram":
        self._server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._server.__exit__(*exc)

    # --- the test side ----------------------------------------------------------------------
    def user_message(self, chat_id: int, text: str | None = None, first_name: str = "Alice",
                     chat_type: str = "private", kind: str = "message", user_id: int | None = None,
                     reply_to_bot: bool = False, **extra) -> dict:
        """Queue an incoming message (text, or ``extra`` fields like a sticker). Returns the update.

        ``kind`` is the update's field ("message", "channel_post"...). In groups each first name
        is its own user. ``@joey_test_bot`` in the text is marked as a mention, as Telegram does;
        ``reply_to_bot`` makes the message a reply to one of the bot's messages.
        """
        message_id = next(self._message_ids)
        chat = {"id": chat_id, "type": chat_type}
        chat.update({"first_name": first_name} if chat_type == "private" else {"title": "Central Perk"})
        if user_id is None:
            user_id = chat_id if chat_type == "private" else self._user_ids.setdefault(first_name, 7 + len(self._user_ids))
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat,
                   "from": {"id": user_id, "is_bot": False, "first_name": first_name}, **extra}
        if text is not None:
            message["text"] = text
            entities = [{"type": "mention", "offset": _utf16(text[:m.start()]), "length": _utf16(m.group())}
                        for m in re.finditer("@" + BOT_USER["username"], text)]
            if text.startswith("/"):
                entities.append({"type": "bot_command", "offset": 0, "length": _utf16(text.split()[0])})
            if entities:
                message["entities"] = sorted(entities, key=lambda e: e["offset"])
        if reply_to_bot:
            message["reply_to_message"] = {"message_id": next(self._sent_ids), "date": int(time.time()),
                                           "chat": chat, "from": self.bot_user, "text": "How you doin'?"}
        with self.lock:
            update = {"update_id": self._next_update_id, kind: message}
            self._next_update_id += 1
            if self.webhook is None:  # with a webhook, the test posts it (post_update)
                self.updates.append(update)
        return update

    async def post_update(self, update: dict, url: str | None = None, secret: str | None = None) -> int:
        """POST ``update`` to the webhook as Telegram does (to ``url`` if given: where it is served
        in the test); ``secret`` overrides the header ("" leaves it out). Returns the status code."""
        import httpx

        secret = self.webhook.get("secret_token", "") if secret is None else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(url or self.webhook["url"], json=update, headers=headers)
        return response.status_code

    def make_admin(self, chat_id: int, first_name: str) -> None:
        """The group's member of that name (as user_message names them) becomes an administrator."""
        with self.lock:
            user_id = self._user_ids.setdefault(first_name, 7 + len(self._user_ids))
            self.admins.setdefault(chat_id, set()).add(user_id)

    def restart_update_ids(self, first: int) -> None:
        """The next update gets id ``first``, lower than before: Telegram after a week without
        updates (ids then start afresh), or another bot behind a reused state file."""
        with self.lock:
            self._next_update_id = first

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group becomes a supergroup: sending to its old id fails with migrate_to_chat_id."""
        with self.lock:
            self.migrated[old_chat_id] = new_chat_id

    def fail_next(self, method: str, body: dict = TOO_MANY, times: int = 1) -> None:
        with self.lock:
            self.failures.setdefault(method, []).extend([(body["error_code"], body)] * times)

    def hold_next(self, method: str, seconds: float) -> None:
        """The next call of ``method`` is recorded (and done) at once, but answered ``seconds`` later:
        a slow network, or a response still on its way when the bot stops."""
        with self.lock:
            self.holds.setdefault(method, []).append(seconds)

    def sent(self, chat_id: int | None = None, method: str = "sendMessage", failed: bool = False) -> list[dict]:
        """Parameters of the calls of ``method`` (to ``chat_id``) that succeeded, or with ``failed`` all."""
        with self.lock:
            return [p for m, p, ok in self.calls
                    if m == method and (ok or failed) and (chat_id is None or int(p["chat_id"]) == chat_id)]

    def texts(self, chat_id: int) -> list[str]:
        return [p["text"] for p in self.sent(chat_id)]

    async def wait_texts(self, chat_id: int, count: int, timeout: float = 60) -> list[str]:
        """Wait until ``count`` messages went to ``chat_id``; returns them all."""
        deadline = time.monotonic() + timeout
        while len(texts := self.texts(chat_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"chat {chat_id}: {len(texts)} of {count} messages after {timeout} s: {texts}")
            await asyncio.sleep(0.05)
        return texts

    # --- the Bot API side -------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> JSONResponse:
        token, method = request.path_params["token"], request.path_params["method"]
        if token != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        params = await _params(request)
        with self.lock:
            queued = self.failures.get(method)
            failure = queued.pop(0) if queued else None
            self.calls.append((method, params, failure is None))
            held = self.holds.get(method)
            hold_s = held.pop(0) if held else 0.0
        if failure is not None:
            return JSONResponse(failure[1], status_code=failure[0])
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        result = handler(params)
        if asyncio.iscoroutine(result):
            result = await result
        await asyncio.sleep(hold_s)
        if isinstance(result, JSONResponse):  # the method itself refused
            with self.lock:
                index = next(i for i in range(len(self.calls) - 1, -1, -1) if self.calls[i][1] is params)
                self.calls[index] = (method, params, False)
            return result
        return JSONResponse({"ok": True, "result": result})

    def _api_getMe(self, params: dict) -> dict:
        return self.bot_user

    def _api_deleteWebhook(self, params: dict) -> bool:
        with self.lock:
            self.webhook = None
        return True

    def _api_getChatMember(self, params: dict) -> dict:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": "someone"}
        if user_id not in self.admins.get(chat_id, ()):
            return {"status": "member", "user": user}
        rights = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                  "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                  "can_edit_stories", "can_delete_stories")
        return {"status": "administrator", "user": user, "can_be_edited": False, "is_anonymous": False,
                **{right: True for right in rights}}

    def _api_setWebhook(self, params: dict) -> bool:
        with self.lock:
            self.webhook = params
        return True

    def _api_setMyCommands(self, params: dict) -> bool:
        return True

    def _api_sendChatAction(self, params: dict) -> bool:
        return True

    def _api_sendMessageDraft(self, params: dict) -> bool:
        return True

    def _api_sendMessage(self, params: dict) -> dict | JSONResponse:
        chat_id = int(params["chat_id"])
        if chat_id in self.migrated:
            return JSONResponse({"ok": False, "error_code": 400,
                                 "description": "Bad Request: group chat was upgraded to a supergroup chat",
                                 "parameters": {"migrate_to_chat_id": self.migrated[chat_id]}}, status_code=400)
        return {"message_id": next(self._sent_ids), "date": int(time.time()), "from": self.bot_user,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"}, "text": params["text"]}

    async def _api_getUpdates(self, params: dict) -> list[dict] | JSONResponse:
        if self.webhook is not None:
            return JSONResponse({"ok": False, "error_code": 409, "description": "Conflict: can't use getUpdates "
                                 "method while webhook is active; use deleteWebhook to delete the webhook first"},
                                status_code=409)
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            with self.lock:
                # A later offset confirms everything before it; one more than 10 past the tail is
                # "in the future" and ignored: the queue is served from its head, nothing confirmed.
                if offset and offset <= self._next_update_id + 10:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                ready = self.updates[:limit]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.02)


def _utf16(text: str) -> int:
    """Telegram's entity offsets and lengths count UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


async def _params(request: Request) -> dict:
    if request.method == "GET":
        return dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()
        return json.loads(body) if body else {}
    # PTB sends form-encoded bodies when there are no files (python-multipart is not needed).
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
