"""The one backoff policy of everything that retries: the client's reconnects and the Telegram bot's calls.

Waits double from a base up to a cap, with "equal jitter" (a random half to all of the wait,
as the web page's socket does): clients or chats that failed together do not all try again in
the same instant, and no wait is longer than the cap.
"""

from __future__ import annotations

import random


def backoff_s(base_s: float, failures: int, cap_s: float) -> float:
    """The wait before try ``failures + 1``, after ``failures`` failures in a row."""
    return min(cap_s, base_s * 2 ** min(max(failures - 1, 0), 20)) * (0.5 + random.random() / 2)
