"""Starlette wiring: /ws, /healthz, /readyz, /metrics and the static chat page at /."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from backend.config import Config
from backend.hub import Hub
from backend.logs import redact_query_strings, use_json_logs
from backend.metrics import CONTENT_TYPE, Metrics
from backend.plugins import load_frontends, load_routes
from backend.shutdown import GracefulShutdown
from backend.store import open_store
from backend.websocket import CLOSE_POLICY, CLOSE_TRY_AGAIN_LATER, serve_connection
from model import heap
from model.generator import Generator, JoeyGenerator

log = logging.getLogger("joey.app")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """Pure ASGI middleware, so WebSocket traffic passes through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def load_generator(config: Config) -> JoeyGenerator:
    files = config.model_files()
    if config.engine_url:  # the engines elsewhere hold the weights; here only the tokenizer is read
        from model.remote_pool import RemoteSettings, base_urls

        settings = RemoteSettings(
            model=config.engine_model, api_key=config.engine_api_key, connect_timeout_s=config.engine_connect_timeout_s,
            first_token_timeout_s=config.engine_first_token_timeout_s, token_timeout_s=config.engine_token_timeout_s,
            retries=config.engine_retries, retry_backoff_s=config.engine_retry_backoff_s,
            health_interval_s=config.engine_health_interval_s)
        return JoeyGenerator.remote(base_urls(config.engine_url), files.base, config.engine_options(),
                                    config.character(), settings)
    return JoeyGenerator.load(files.base, files.adapter or None, config.engine_options(), config.character(), files)


def origin_allowed(websocket: WebSocket, config: Config) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser: Origin is a browser-enforced signal only
        return True
    allowed = config.origins()
    if "*" in allowed or origin in allowed:
        return True
    # Same origin counts only where Host cannot be an attacker's name: a DNS-rebinding page at
    # http://evil.example:8000 sends Host: evil.example:8000 and a matching Origin. A loopback
    # name or an IP literal cannot be rebound; any other public name goes in allowed_origins.
    host = websocket.headers.get("host", "")
    return trusted_host(host) and origin in (f"http://{host}", f"https://{host}")


def trusted_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def presented_key(connection: HTTPConnection) -> str:
    auth = connection.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else connection.query_params.get("api_key", "")


def api_key_ok(connection: HTTPConnection, config: Config) -> bool:
    return not config.api_key or hmac.compare_digest(presented_key(connection).encode(), config.api_key.encode())


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_among(given: str, digests: list[bytes]) -> bytes | None:
    """The one of ``digests`` that ``given`` matches, or None. Every key is compared, every time,
    in constant time: no early exit for the timing to show."""
    given_digest, found = key_digest(given), None
    for digest in digests:
        if hmac.compare_digest(given_digest, digest):
            found = digest
    return found


def create_app(config: Config, generator: Generator | None = None) -> Starlette:
    connections: set[WebSocket] = set()
    trusted_keys = [key_digest(key) for key in config.trusted_key_list()]
    metrics = Metrics()
    redact_query_strings()
    if config.log_format == "json":
        use_json_logs()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        redact_query_strings()  # again: uvicorn configured its loggers after create_app
        if config.log_format == "json":  # again: uvicorn set its own formatters after create_app
            use_json_logs()
        gen = generator or await asyncio.to_thread(load_generator, config)
        context = getattr(gen, "context", None)
        if context is not None and config.max_new_tokens > context - 32:
            raise ValueError(f"max_new_tokens={config.max_new_tokens} leaves too little of the "
                             f"{context}-token context for the conversation")
        await asyncio.to_thread(gen.start)  # an engine process loads the weights here
        hub = Hub(gen, config, open_store(config), metrics)
        if config.state_url:  # several replicas: replies and control messages travel through Redis
            from backend.relay import Relay

            hub.relay = Relay(config.state_url)
            hub.relay.start(hub.on_control)
        hub.start()
        metrics.watch(gen)
        shutdown = GracefulShutdown(hub, connections, config.shutdown_grace_s)
        shutdown.install(asyncio.get_running_loop())
        app.state.generator, app.state.hub, app.state.metrics = gen, hub, metrics
        app.state.connections = connections
        frontends = load_frontends(config, hub)
        for frontend in frontends:
            await frontend.start()
        app.state.frontends = {frontend.name: frontend for frontend in frontends}  # their HTTP routes answer now
        heap.hold()  # start-up's objects last as long as the server
        try:
            yield
        finally:
            heap.release()
            shutdown.uninstall()
            app.state.frontends = {}
            for frontend in reversed(frontends):
                await frontend.stop()
            await hub.stop()
            if hub.relay is not None:
                await hub.relay.stop()
            gen.stop()
            if hub.store is not None:
                hub.store.close()

    async def websocket_endpoint(websocket: WebSocket) -> None:
        # Refusals before accept() become an HTTP 403 on the handshake.
        if not origin_allowed(websocket, config) or not api_key_ok(websocket, config):
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        if len(connections) >= config.max_connections:
            metrics.closes.labels(str(CLOSE_TRY_AGAIN_LATER)).inc()
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="too many connections")
            return
        connections.add(websocket)
        metrics.connections_total.inc()
        metrics.connections.set(len(connections))
        try:
            # A trusted bridge speaks for many people from one address.
            trusted = bool(trusted_keys) and key_among(presented_key(websocket), trusted_keys) is not None
            await serve_connection(websocket, websocket.app.state.hub, config, trusted)
        finally:
            connections.discard(websocket)
            metrics.connections.set(len(connections))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if not api_key_ok(request, config):  # what is served and how busy: for the operator's probes only
            return JSONResponse({"error": "this server needs its API key"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        gen = getattr(request.app.state, "generator", None)
        hub = getattr(request.app.state, "hub", None)
        # Not ready while stopping or full, so a load balancer sends newcomers elsewhere.
        ready = (gen is not None and gen.ready and hub is not None and not hub.stopping
                 and len(connections) < config.max_connections)
        files = config.model_files()
        # Folder names only: a probe needs to know what is served, not where it lies on disk.
        body = {"ready": ready, "model": files.name, "about": files.about, "base": Path(files.base).name,
                "character": gen.bot_name if gen is not None else None,
                "adapter": Path(files.adapter).name if files.adapter else None,
                "sessions": len(hub.sessions) if hub else 0, "connections": len(connections)}
        if gen is not None:
            stats = gen.stats()
            body["engine"] = {"ready": gen.ready, "active": stats.active_batch, "waiting": stats.queue_depth,
                              "tokens_generated": stats.tokens_generated}
            if not gen.ready and (why := getattr(getattr(gen, "engine", None), "reason", "")):
                body["engine"]["reason"] = why  # a remote engine down: which one, and what it answered
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes = [WebSocketRoute("/ws", websocket_endpoint), Route("/healthz", healthz), Route("/readyz", readyz),
              Route("/metrics", metrics_endpoint), *load_routes(config)]
    if Path(config.web_root).is_dir():
        routes.append(Mount("/", StaticFiles(directory=config.web_root, html=True), name="web"))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.frontends = {}
    app.add_middleware(SecurityHeaders)
    return app
