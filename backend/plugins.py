"""Frontend plugins: the one small interface every frontend shares, found through entry points.

A frontend is a class with a ``name``, a ``from_config(config, hub)`` constructor and async
``start()``/``stop()``. It registers in pyproject.toml under ``[project.entry-points."joey_chat.frontends"]``
and runs in-process with ``joey serve --frontends NAME``. docs/frontends.md shows how to add one.

A frontend may also serve HTTP (the OpenAI-compatible API does): a classmethod ``routes(config)``
returning Starlette routes, which the app mounts when it is created, before any frontend starts.
Their handlers find the running frontend in ``request.app.state.frontends[name]`` (absent before
start and after stop), and the hub through it.

The ``joey`` sub-commands register the same way, under ``joey_chat.commands`` (backend/cli.py).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar, Protocol

from backend.config import Config

FRONTENDS = "joey_chat.frontends"
COMMANDS = "joey_chat.commands"  # the ``joey`` sub-commands (backend/cli.py)


class Frontend(Protocol):
    name: ClassVar[str]

    @classmethod
    def from_config(cls, config: Config, hub) -> "Frontend": ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def available(group: str = FRONTENDS) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _unknown(wanted: list[str], found: dict) -> list[str]:
    return [f"unknown frontend {n!r}; installed: {sorted(found) or 'none'}" for n in wanted if n not in found]


def load_frontends(config: Config, hub) -> list[Frontend]:
    wanted, found = config.frontend_names(), available()
    if unknown := _unknown(wanted, found):
        raise ValueError("; ".join(unknown))
    return [found[name].load().from_config(config, hub) for name in wanted]


def load_routes(config: Config) -> list:
    """The HTTP routes of the wanted frontends that serve some (unknown names are for
    load_frontends and preflight to report)."""
    found, routes = available(), []
    for name in config.frontend_names():
        make = getattr(found[name].load(), "routes", None) if name in found else None
        if make is not None:
            routes.extend(make(config))
    return routes


def preflight(config: Config) -> list[str]:
    """Problems the wanted frontends can see before the server starts (say, a missing token)."""
    wanted, found = config.frontend_names(), available()
    problems = _unknown(wanted, found)
    for name in wanted:
        check = getattr(found[name].load(), "preflight", None) if name in found else None
        if check is not None and (problem := check(config)):
            problems.append(f"{name}: {problem}")
    return problems
