"""One member of a group cannot use up the group's Joey: a rate window per member.

A group shares one Joey session, and the server's rate limit counts that session, so one member
flooding would make Joey tell the whole group to wait. Each member's messages for Joey are
counted here in a sliding window (the server's own, ``backend.relay.LocalRelay``), by the time
Telegram says they were sent. Beyond ``group_user_messages`` per ``group_user_window`` seconds
a message is not asked; the member is told once per flood (until one of theirs is asked again).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from telegram import Message

from backend.relay import LocalRelay
from frontends.telegram.health import TelegramMetrics

WINDOW = LocalRelay()  # keeps nothing itself: each member's window is its own sent_times
FORGET_AFTER = 10_000  # members tracked before idle ones are forgotten


@dataclass
class Member:
    id: str
    sent_times: deque = field(default_factory=deque)


class GroupRate:
    def __init__(self, limit: int, window_s: float, metrics: TelegramMetrics):
        self.limit, self.window_s, self.metrics = limit, window_s, metrics
        self.members: dict[tuple[int, int], Member] = {}
        self.told: set[tuple[int, int]] = set()

    def refused(self, message: Message) -> tuple[float, bool] | None:
        """None when ``message`` may be asked (it is counted); else (seconds until the member may
        speak again, whether to tell them)."""
        if self.limit <= 0:
            return None
        sender = message.sender_chat.id if message.sender_chat else message.from_user.id
        key, now = (message.chat.id, sender), message.date.timestamp()
        member = self.members.setdefault(key, Member(f"{key[0]}/{key[1]}"))
        sent = WINDOW.sent_times(member, now, self.window_s)
        if len(sent) >= self.limit:
            self.metrics.turned_away.labels("member_rate").inc()
            tell = key not in self.told
            self.told.add(key)
            return min(sent) + self.window_s - now, tell
        WINDOW.count_sent(member, now, self.window_s)
        self.told.discard(key)
        if len(self.members) > FORGET_AFTER:
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, m in self.members.items() if not WINDOW.sent_times(m, now, self.window_s)]:
            del self.members[key]
            self.told.discard(key)
