"""The messages across the engine process's pipe: one kind each, one frozen dataclass per kind.

Parent to child: :class:`Submit`, :class:`Abort`, :class:`Stop`. Child to parent: :class:`Loaded`,
:class:`Ready`, :class:`Events` (one engine step's text and ends, with the counters when they
changed), :class:`Log` and :class:`Failed`. Both sides dispatch with ``match`` on the class, as
vLLM's engine core does on ``EngineCoreRequestType``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from model.metrics import EngineStats
from model.reply import ReplyEnd, TextChunk
from model.sampling import GenerationParams


class Kind(Enum):
    SUBMIT = "submit"
    ABORT = "abort"
    STOP = "stop"
    LOADED = "loaded"
    READY = "ready"
    EVENTS = "events"
    LOG = "log"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Submit:
    kind: ClassVar[Kind] = Kind.SUBMIT
    request_id: int
    prompt: list[int]
    params: GenerationParams


@dataclass(frozen=True, slots=True)
class Abort:
    kind: ClassVar[Kind] = Kind.ABORT
    request_id: int


@dataclass(frozen=True, slots=True)
class Stop:
    kind: ClassVar[Kind] = Kind.STOP


@dataclass(frozen=True, slots=True)
class Loaded:
    kind: ClassVar[Kind] = Kind.LOADED


@dataclass(frozen=True, slots=True)
class Ready:
    kind: ClassVar[Kind] = Kind.READY


@dataclass(frozen=True, slots=True)
class Events:
    kind: ClassVar[Kind] = Kind.EVENTS
    events: list[tuple[int, TextChunk | ReplyEnd]]  # (request id, event), in order
    stats: EngineStats | None  # before the events are delivered: a caller that sees an end sees its counts


@dataclass(frozen=True, slots=True)
class Log:
    kind: ClassVar[Kind] = Kind.LOG
    name: str
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class Failed:
    kind: ClassVar[Kind] = Kind.FAILED
    reason: str


MESSAGES = (Submit, Abort, Stop, Loaded, Ready, Events, Log, Failed)
