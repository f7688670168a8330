"""The engine in a child process of its own, so the server's event loop and the engine never
wait for one GIL.

Why: in one process, every torch op the engine thread calls gives up the GIL and takes it back,
and the event loop, busy with a JSON frame and a WebSocket send for each chunk, takes it in
between, so the engine idles part of every step (docs/benchmarks.md). vLLM runs its engine core
in a process of its own for the same reason.

* Parent: :class:`EngineProcess` has the in-process :class:`~model.engine.Engine`'s face
  (``submit`` gives a :class:`~model.reply.Reply`; ``abort``, ``ready``, ``stats``). A reader
  thread takes each engine step's events off the pipe and hands them to the event loops
  through a :class:`~model.reply.Mailbox`, as the engine thread does in-process.
* Child: loads the model (the server process never holds the weights), runs an ``Engine``
  whose mailbox sends one message per step, and reads commands on a thread of its own.

The messages both ways are typed, one dataclass per kind: model/engine_messages.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import signal
import threading
import time

from model.character import Character
from model.engine_messages import Abort, Events, Failed, Loaded, Log, Ready, Stop, Submit
from model.engine_options import EngineOptions
from model.loading import build_engine
from model.metrics import EngineMetrics, EngineStats
from model.reply import EngineError, FinishReason, Mailbox, Reply, ReplyEnd
from model.sampling import GenerationParams

log = logging.getLogger("joey.engine")

# The child's counters go to the parent with a step's events when its batch or queue changed or
# a reply ended, and otherwise at most this often (a snapshot costs a pickle).
STATS_EVERY_S = 0.05
STOP_WAIT_S = 10.0  # a stopping child that has not exited by then is terminated


# Not fork: the server has threads by then. Not spawn: every child would import torch and
# transformers afresh (3.5 s for the tests' tiny model). A fork server imports them once, and
# forks each engine process from there, before any torch thread exists.
_PRELOAD = ["model.loading", "transformers.models.llama.modeling_llama", "peft"]


class EngineProcess:
    """An :class:`~model.engine.Engine` built by ``model.loading.build_engine`` in a child
    process; started by :meth:`start`."""

    def __init__(self, base: str, adapter: str | None, options: EngineOptions, character: Character | None = None):
        build = (base, adapter, options, character)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_child_main, args=(build, child_end, log.getEffectiveLevel()),
                                        name="joey-engine", daemon=True)
        self._child_end = child_end
        self._send_lock = threading.Lock()
        self._mailbox = Mailbox()  # touched by the reader thread only
        self._replies: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._ids = itertools.count(1)
        self._stats = EngineMetrics().snapshot(queue_depth=0, active_batch=0)
        self._loaded, self._warm = threading.Event(), threading.Event()
        self._reader: threading.Thread | None = None
        self._stopping = False
        self.failure: BaseException | None = None

    # --- the Engine's face ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process.is_alive() and self.failure is None

    @property
    def ready(self) -> bool:
        return self.running and self._warm.is_set()

    @property
    def active(self) -> int:
        return self._stats.active_batch

    @property
    def waiting(self) -> int:
        return self._stats.queue_depth

    @property
    def tokens_generated(self) -> int:
        return self._stats.tokens_generated

    def stats(self) -> EngineStats:
        return self._stats

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._warm.wait(timeout)

    def start(self) -> None:
        """Start the child and return once it has loaded the model (warm-up goes on; ``ready``
        says when it is done), as the in-process engine's load does. Raises EngineError if it failed."""
        self._process.start()
        self._child_end.close()  # the child's end now lives in the child: EOF here when it exits
        self._reader = threading.Thread(target=self._read, name="joey-engine-reader", daemon=True)
        self._reader.start()
        self._loaded.wait()
        if self.failure is not None:
            raise EngineError(str(self.failure))

    def stop(self) -> None:
        self._stopping = True
        if self._process.is_alive():
            self._send(Stop())
            self._process.join(STOP_WAIT_S)
            if self._process.is_alive():
                log.warning("the engine process did not stop within %.0f s: terminating it", STOP_WAIT_S)
                self._process.terminate()
                self._process.join()
        if self._reader is not None:
            self._reader.join(STOP_WAIT_S)
        self._conn.close()

    def submit(self, prompt: list[int], params: GenerationParams) -> Reply:
        if not self.running:
            raise EngineError(f"the engine is not running{f': {self.failure}' if self.failure else ''}")
        params.validate()  # here, so a bad request fails in its caller, not in the child
        reply = Reply(self.abort, next(self._ids))
        self._replies[reply.id] = (asyncio.get_running_loop(), reply.queue)
        if not self._send(Submit(reply.id, list(prompt), params)):
            del self._replies[reply.id]
            raise EngineError("the engine process is gone")
        return reply

    def abort(self, request_id: int) -> None:
        self._send(Abort(request_id))

    # --- internals ------------------------------------------------------------------------------
    def _send(self, message: Submit | Abort | Stop) -> bool:
        with self._send_lock:
            try:
                self._conn.send(message)
                return True
            except (OSError, ValueError):  # the child has gone, or stop() closed the pipe
                return False

    def _read(self) -> None:
        """The reader thread: the child's messages, until it exits."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            match message:
                case Events(events, stats):
                    if stats is not None:  # before the events: a caller that sees an end sees its counts
                        self._stats = stats
                    for request_id, event in events:
                        loop, queue = self._replies.pop(request_id) if isinstance(event, ReplyEnd) \
                            else self._replies[request_id]
                        self._mailbox.put(loop, queue, event)
                    self._mailbox.flush()
                case Loaded():
                    self._loaded.set()
                case Ready():
                    self._warm.set()
                case Log(name, level, text):
                    logging.getLogger(name).log(level, "%s", text)
                case Failed(reason):
                    self.failure = EngineError(reason)
        if self.failure is None and not self._stopping:
            self._process.join(1.0)  # EOF comes first; let it be reaped, for its exit code
            self.failure = EngineError(f"the engine process exited (code {self._process.exitcode})")
        if self.failure is not None:
            log.error("engine process failed: %s", self.failure)
        self._loaded.set()  # start() waits for this; failure says why
        # Nobody will answer what is still out: end it, so no caller waits for ever.
        end = ReplyEnd(FinishReason.ERROR, 0, str(self.failure)) if self.failure else ReplyEnd(FinishReason.CANCELLED, 0)
        for request_id in list(self._replies):
            loop, queue = self._replies.pop(request_id)
            self._mailbox.put(loop, queue, end)
        self._mailbox.flush()


class _Outbox:
    """The child engine's mailbox: one step's events go to the parent as one message, with a
    snapshot of the counters when the batch or the queue changed, a reply ended, or
    ``STATS_EVERY_S`` has passed (so the parent's view is never behind what it was told)."""

    def __init__(self, send):
        self._send, self._events = send, []
        self._sent_shape, self._sent_at = (0, 0), 0.0
        self.engine = None  # set once the engine exists

    def emitter(self, request_id: int):
        return lambda event: self._events.append((request_id, event))

    def flush(self) -> None:
        shape, now = (self.engine.active, self.engine.waiting), time.monotonic()
        if not self._events and shape == self._sent_shape:
            return
        stats = None
        if shape != self._sent_shape or now - self._sent_at >= STATS_EVERY_S or \
                any(isinstance(event, ReplyEnd) for _, event in self._events):
            stats, self._sent_shape, self._sent_at = self.engine.stats(), shape, now
        self._send(Events(self._events, stats))
        self._events = []


class _LogToParent(logging.Handler):
    def __init__(self, send):
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        self._send(Log(record.name, record.levelno, self.format(record)))


def _child_main(build: tuple, conn, log_level: int) -> None:
    """The child process: build the engine, answer commands until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    lock = threading.Lock()

    def send(message: Loaded | Ready | Events | Log | Failed) -> None:
        with lock:
            try:
                conn.send(message)
            except (OSError, ValueError):
                pass  # the parent has gone; the reader below sees EOF and stops the engine

    root = logging.getLogger()
    root.handlers[:] = [_LogToParent(send)]
    root.setLevel(log_level)
    outbox = _Outbox(send)
    try:
        engine, _, _ = build_engine(*build, mailbox=outbox)
        outbox.engine = engine
        engine.start()
        send(Loaded())
    except BaseException as exc:  # noqa: BLE001 - the parent reports it; this process ends
        send(Failed(f"loading the model failed: {type(exc).__name__}: {exc}"))
        return
    threading.Thread(target=_commands, args=(conn, engine, outbox), name="joey-engine-commands", daemon=True).start()
    while not engine.wait_ready(0.5):
        if not engine.running:
            break
    if engine.ready:
        send(Ready())
    engine.join()
    if engine.failure is not None:
        send(Failed(f"{type(engine.failure).__name__}: {engine.failure}"))


def _commands(conn, engine, outbox: _Outbox) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = Stop()  # the parent has gone
        match message:
            case Submit(request_id, prompt, params):
                engine.add(request_id, prompt, params, outbox.emitter(request_id))
            case Abort(request_id):
                engine.abort(request_id)
            case Stop():
                engine.stop()
                return
