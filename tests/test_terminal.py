"""`joey chat` as a real subprocess against a real server: streaming, /reset, Ctrl-C, /quit, resume."""

from __future__ import annotations

import codecs
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and add_reader")


class Chat:
    """`python -u -m backend.cli chat ...`, with its output read as it comes (never fixed sleeps)."""

    def __init__(self, server_url: str, session_file, *extra: str):
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
        env.pop("JOEY_API_KEY", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "backend.cli", "chat", "--server", server_url,
             "--session-file", str(session_file), *extra],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.output = ""  # everything printed so far
        self.pos = 0  # expect() searches after this
        self.changed = threading.Condition()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()

    def _pump(self, pipe, is_stdout: bool) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while data := os.read(pipe.fileno(), 4096):
            if not is_stdout:
                self.stderr.append(data)
                continue
            with self.changed:
                self.output += decoder.decode(data)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def expect(self, pattern: str, timeout: float = 90) -> re.Match:
        """Wait until ``pattern`` (a regex) appears after what earlier expects consumed."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self.changed:
            while True:
                match = regex.search(self.output, self.pos)
                if match:
                    self.pos = match.end()
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.changed.wait(0.5)):
                    raise AssertionError(f"{pattern!r} not seen; output:\n{self.output[max(0, self.pos - 300):]}\n"
                                         f"stderr:\n{b''.join(self.stderr).decode(errors='replace')[-2000:]}")
                self.changed.wait(left)

    def say(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def chats():
    started: list[Chat] = []

    def start(*args, **kwargs) -> Chat:
        started.append(Chat(*args, **kwargs))
        return started[-1]

    yield start
    for chat in started:
        chat.close()


def saved_session(session_file, server) -> str:
    return json.loads(session_file.read_text())["sessions"][server.url]["session_id"]


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_chat_streams_reply_resets_and_quits(make_server, chats, tmp_path):
    server = make_server()
    session_file = tmp_path / "session.json"
    chat = chats(server.url, session_file, "--name", "Monica")
    chat.expect(r"\(new conversation\)")
    assert os.stat(session_file).st_mode & 0o077 == 0  # the token is a secret
    session_id = saved_session(session_file, server)
    session = server.hub.sessions[session_id]
    assert session.user_name == "Monica"

    chat.say("How you doin'?")
    assert wait_for(lambda: len(session.history) == 2 and not session.answering)
    reply = session.history[-1]["text"]
    chat.expect("Joey: " + re.escape(reply.lstrip()) + r"\n")  # exactly what the server generated

    chat.say("/reset")
    chat.expect(r"\(started over")
    assert list(session.history) == []

    chat.say("/quit")
    assert chat.wait() == 0


def test_ctrl_c_cancels_the_reply_and_twice_exits(make_server, chats, tmp_path):
    server = make_server(min_new_tokens=200, max_new_tokens=200)
    chat = chats(server.url, tmp_path / "session.json")
    chat.expect(r"\(new conversation\)")
    session = server.hub.sessions[saved_session(tmp_path / "session.json", server)]

    chat.say("Tell me a long story")
    chat.expect(r"Joey: [^\n]*\S")  # the reply is streaming
    chat.interrupt()
    chat.expect(r"\(stopped - Ctrl-C again to quit\)")
    ends = [end for end in session.answered.values() if end]
    assert len(ends) == 1 and ends[0]["finish_reason"] == "cancelled" and ends[0]["tokens"] < 200
    assert chat.proc.poll() is None  # one Ctrl-C only cancels

    chat.say("And another one")
    chat.expect(r"Joey: [^\n]*\S")
    chat.interrupt()  # cancels...
    chat.interrupt()  # ...and a second one at once exits, mid-reply
    try:
        rc = chat.wait(timeout=10)
    except subprocess.TimeoutExpired:  # the kernel merged two signals that came too close: one more
        chat.expect(r"\(stopped - Ctrl-C again to quit\)")
        chat.interrupt()
        rc = chat.wait()
    assert rc == 130
    assert wait_for(lambda: not session.answering)  # the server ended that reply too


def test_ctrl_c_while_idle_exits(make_server, chats, tmp_path):
    server = make_server()
    chat = chats(server.url, tmp_path / "session.json")
    chat.expect(r"\(new conversation\)")
    chat.interrupt()
    assert chat.wait() == 130


def test_resumes_after_server_restart_and_next_run(make_server, chats, tmp_path):
    port, state = free_port(), str(tmp_path / "sessions.db")
    session_file = tmp_path / "session.json"
    server = make_server(port=port, state_path=state)
    chat = chats(server.url, session_file)
    chat.expect(r"\(new conversation\)")
    session_id = saved_session(session_file, server)
    chat.say("Remember the duck")
    chat.expect(r"Joey: [^\n]*\n")

    server.__exit__(None, None, None)  # the server restarts...
    server = make_server(port=port, state_path=state)
    chat.say("Still there?")  # ...and the client resumes on its own
    chat.expect(r"\(reconnected\)")
    chat.expect(r"Joey: [^\n]*\n")
    session = server.hub.sessions[session_id]
    assert wait_for(lambda: len(session.history) == 4)
    assert [h["text"] for h in session.history][::2] == ["Remember the duck", "Still there?"]
    chat.say("/quit")
    assert chat.wait() == 0

    again = chats(server.url, session_file)  # the next run continues the same conversation
    again.expect(r"\(resumed your conversation: 4 earlier messages\)")
    again.expect(r"you: Remember the duck")
    again.proc.stdin.close()  # end of input exits like /quit
    assert again.wait() == 0
    assert saved_session(session_file, server) == session_id
