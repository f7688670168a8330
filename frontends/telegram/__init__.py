"""Joey on Telegram: a frontend plugin built on python-telegram-bot and the session API.

- ``plugin.TelegramFrontend``: in-process, started by ``joey serve --telegram``.
- ``cli``: out-of-process, ``joey telegram --server ws://host:port/ws``.
- ``bot.TelegramAdapter``: the adapter both use; docs/telegram.md describes it.
"""
