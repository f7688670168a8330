"""Joey in the terminal: ``joey chat``, a protocol-v1 WebSocket client that resumes your session.

- ``chat``: the command and the conversation loop (built on the ``client`` package).
- ``line_input``: stdin lines and Ctrl-C, delivered on the event loop.
- ``session_file``: the session kept between runs.
"""
