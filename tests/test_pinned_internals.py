"""Private internals of our dependencies that the code relies on: pinned exactly, and checked here.

- backend/ws_protocol.py subclasses uvicorn's sans-I/O WebSocket protocol and replaces three of
  its methods.
- model/compiled.py wraps torch inductor's ``GraphLowering.allocate_non_dup_const_name``.
- frontends/telegram/http_server.py runs uvicorn's ``Server._serve``, ``serve`` without its signal
  handlers (the standalone bot's own handlers stop it).

None is a public API, so a new version may change them without notice. Each is pinned to one
version in pyproject.toml, and these tests fail when the installed version or the code relied on
differs: the upstream methods' sources (by digest), the state the overrides touch, and the
upstream behaviour each one works around. After an upgrade, re-read the override against the new
upstream code, then update the digests here.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import struct
import tomllib

import pytest

from tests.conftest import ROOT


def pinned(package: str) -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    exact = [d.split("==", 1)[1].strip() for d in dependencies if d.split("==")[0].strip() == package]
    assert exact, f"{package} must be pinned to one version (==) in pyproject.toml"
    return exact[0]


def digest(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


# --- uvicorn: backend/ws_protocol.py --------------------------------------------------------------
UVICORN_DIGESTS = {"data_received": "c89d394077d8841d", "handle_parser_exception": "ff5cf13c764fb332",
                   "keepalive_timeout": "8e1ceb6ec446de9d"}
OVERRIDE_STATE = ("conn", "queue", "loop", "transport", "close_sent", "close_timer", "close_timeout", "read_paused",
                  "pong_timer", "pending_ping_payload")


def test_uvicorn_is_the_pinned_version():
    import uvicorn

    assert uvicorn.__version__ == pinned("uvicorn")


def test_uvicorn_serve_is_its_signal_handlers_around_the_serve_the_telegram_bot_calls():
    import uvicorn

    # frontends/telegram/http_server.py calls _serve([sock]) to skip only capture_signals().
    assert digest(uvicorn.Server.serve) == "112ef41af52167e3" and digest(uvicorn.Server._serve) == "4575b7a50adfede8"
    assert list(inspect.signature(uvicorn.Server._serve).parameters) == ["self", "sockets"]


@pytest.mark.parametrize("name", sorted(UVICORN_DIGESTS))
def test_the_uvicorn_methods_ws_protocol_replaces_are_the_ones_it_was_written_against(name):
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from backend.ws_protocol import JoeyWebSocketProtocol

    upstream = vars(WebSocketsSansIOProtocol).get(name)
    assert upstream is not None, f"uvicorn no longer has {name}: backend/ws_protocol.py overrides nothing"
    assert inspect.signature(vars(JoeyWebSocketProtocol)[name]) == inspect.signature(upstream)
    assert digest(upstream) == UVICORN_DIGESTS[name], \
        f"uvicorn's {name} changed: re-read backend/ws_protocol.py against it, then update UVICORN_DIGESTS"


def test_the_upstream_closes_that_ws_protocol_works_around_are_still_there():
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol as upstream

    # After a protocol error, the socket is closed right after the close frame (a reset for a
    # client still sending); a keepalive timeout closes with 1011 and a close() that waits to flush.
    assert "self.conn.parser_exc is not None" in inspect.getsource(upstream.data_received)
    assert "self.transport.close()" in inspect.getsource(upstream.handle_parser_exception)
    timeout = inspect.getsource(upstream.keepalive_timeout)
    assert "self.conn.fail(1011" in timeout and "self.transport.close()" in timeout


async def test_uvicorn_sets_up_the_state_the_overrides_use():
    import uvicorn
    from uvicorn.server import ServerState

    from backend.ws_protocol import JoeyWebSocketProtocol

    async def app(scope, receive, send):
        pass

    config = uvicorn.Config(app, ws=JoeyWebSocketProtocol, ws_max_size=4096, log_config=None)
    protocol = JoeyWebSocketProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    assert [a for a in OVERRIDE_STATE if not hasattr(protocol, a)] == []
    assert (protocol.close_sent, protocol.close_timer, protocol.read_paused) == (False, None, False)
    assert protocol.conn.parser_exc is None and protocol.conn.close_sent is None


def test_websockets_half_closes_after_its_close_frame_as_the_overrides_expect():
    """``_write_pending`` turns the empty write that ends ``data_to_send()`` into a half-close."""
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from backend.websocket import CLOSE_POLICY

    too_big = ServerProtocol(max_size=16, state=State.OPEN)  # a frame over max_frame_bytes
    payload = b"a" * 200
    too_big.receive_data(bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + b"\0\0\0\0" + payload)
    assert too_big.parser_exc is not None and too_big.close_sent.code == 1009
    assert too_big.data_to_send()[-1] == b""
    no_pong = ServerProtocol(state=State.OPEN)  # keepalive_timeout's close
    no_pong.fail(CLOSE_POLICY, "no pong: the client stopped reading")
    sent = no_pong.data_to_send()
    assert sent[0][0] == 0x88 and sent[-1] == b""


# --- torch: model/compiled.py ---------------------------------------------------------------------
TORCH_DIGESTS = {"allocate_non_dup_const_name": "45b46d064e23068b"}


def test_torch_is_the_pinned_version_everywhere_it_is_installed():
    import torch

    version = pinned("torch")
    assert torch.__version__.split("+")[0] == version
    for script in ("setup.sh", "setup_vllm.sh"):
        assert f"torch=={version}" in (ROOT / "scripts" / script).read_text()


def _upstream_allocate():
    from torch._inductor.graph import GraphLowering

    allocate = GraphLowering.allocate_non_dup_const_name
    return getattr(allocate, "__wrapped__", allocate)  # model/compiled.py's wrapper keeps the original


def test_the_torch_method_compiled_wraps_is_the_one_it_was_written_against():
    upstream = _upstream_allocate()
    assert list(inspect.signature(upstream).parameters) == ["self", "name", "data"]
    assert digest(upstream) == TORCH_DIGESTS["allocate_non_dup_const_name"], \
        "torch's allocate_non_dup_const_name changed: re-read model/compiled.py against it, then update TORCH_DIGESTS"


def test_inductor_still_heads_its_cpp_with_constant_addresses_and_the_patch_drops_them():
    import torch
    from torch._inductor.codegen.cpp_wrapper_cpu import CppWrapperCpu
    from torch._inductor.codegen.wrapper import PythonWrapperCodegen
    from torch._inductor.graph import GraphLowering

    from model.compiled import _stable_kernel_sources

    # The header comment of the generated source is each constant's repr (and so is its cache key).
    assert "self.write_constant(name, hashed)" in inspect.getsource(PythonWrapperCodegen.__init__)
    assert "{hashed}" in inspect.getsource(CppWrapperCpu.write_constant)
    module, weight = torch.fx.symbolic_trace(torch.nn.Identity()), torch.ones(3, 4)
    graph = GraphLowering(module)
    name = _upstream_allocate()(graph, "w", weight)
    described = f"{weight.device!r} {weight.dtype!r} (3, 4) (4, 1)"
    assert graph.constant_reprs[name] == f"{described} {hash(weight):x}"  # the address: a new source every start
    _stable_kernel_sources()
    graph = GraphLowering(module)
    name = graph.allocate_non_dup_const_name("w", weight)
    assert graph.constant_reprs == {name: described}
    assert graph.allocate_non_dup_const_name(None, weight) == name and graph.constant_reprs == {name: described}
