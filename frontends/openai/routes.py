"""The /v1 routes: read the request, ask the running frontend, answer in OpenAI's wire format.

- ``GET /v1/models``, ``GET /v1/models/{id}``: the character model(s) served.
- ``POST /v1/chat/completions``: one ``chat.completion``, or Server-Sent Events with ``stream``.

Any other path under /v1 is a 404, and a wrong method a 405, both in OpenAI's error shape. A
request's body is read up to ``openai_max_body_bytes`` and refused with 413 beyond; the rest of
a moderately larger body is read and dropped, so the client, still sending, gets the 413 rather
than a reset connection. A client that goes away, mid-stream or while waiting for a whole
completion, cancels its reply at once.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from frontends.openai.errors import APIError, not_ready, too_large
from frontends.openai.exchange import Exchange
from frontends.openai.request import parse_chat_request
from frontends.openai.wire import DONE, Completion, event, model_list, model_object

DRAIN_FACTOR = 16  # a body up to this many times the limit is read to its end before the 413
CLIENT_GONE = 499  # nginx's "client closed request": logged, never seen by the client
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
PATHS = ("/v1/models", "/v1/chat/completions")


def build_routes(name: str) -> list[BaseRoute]:
    """The /v1 routes of the frontend registered as ``name`` (found in ``app.state.frontends``)."""

    def bound(handler):
        async def endpoint(request: Request) -> Response:
            frontend = request.app.state.frontends.get(name)
            try:
                if frontend is None:  # before start, or stopping
                    raise not_ready()
                return await handler(frontend, request)
            except APIError as exc:
                if frontend is not None:
                    frontend.hub.metrics.errors.labels(exc.code).inc()
                return error_response(exc)
        return endpoint

    return [Mount("/v1", routes=[
        Route("/models", bound(list_models), methods=["GET"]),
        Route("/models/{model_id:path}", bound(get_model), methods=["GET"]),
        Route("/chat/completions", bound(chat_completions), methods=["POST"]),
        Route("/{rest:path}", bound(unknown), methods=METHODS),
    ])]


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def list_models(frontend, request: Request) -> Response:
    frontend.access.caller(request)
    return JSONResponse(model_list([frontend.model_id], frontend.created))


async def get_model(frontend, request: Request) -> Response:
    frontend.access.caller(request)
    frontend.check_model(request.path_params["model_id"])
    return JSONResponse(model_object(frontend.model_id, frontend.created))


async def unknown(frontend, request: Request) -> Response:
    if request.url.path in PATHS:
        raise APIError(405, f"{request.method} is not allowed on {request.url.path}", "method_not_allowed")
    raise APIError(404, f"no route {request.method} {request.url.path[:100]}; this server serves "
                   "GET /v1/models and POST /v1/chat/completions", "unknown_url")


async def chat_completions(frontend, request: Request) -> Response:
    caller = frontend.access.caller(request)  # before the body: a stranger's 10 MB is not read
    body = await read_body(request, frontend.config.openai_max_body_bytes)
    chat = parse_chat_request(body, frontend.config)
    exchange = frontend.begin(chat, caller)
    completion = Completion(exchange.id, chat.model, chat.include_usage)
    if chat.stream:
        return EventStream(stream_events(exchange, completion), exchange.close)
    return await whole(request, exchange, completion)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    refusal = too_large(f"the request body is over {limit} bytes", "request_too_large")
    if declared.isdigit() and int(declared) > limit * DRAIN_FACTOR:
        raise refusal  # too big to be worth reading at all: the connection closes after the 413
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size <= limit:
            parts.append(part)
        elif size > limit * DRAIN_FACTOR:
            break
    if size > limit:
        raise refusal
    return b"".join(parts)


async def whole(request: Request, exchange: Exchange, completion: Completion) -> Response:
    """One chat.completion; a client that disconnects first cancels the reply."""
    reply = asyncio.ensure_future(exchange.collect())
    gone = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({reply, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():
            return Response(status_code=CLIENT_GONE)
        text = reply.result()  # an APIError here becomes the error response
        return JSONResponse(completion.whole(text, exchange.finish_reason, exchange.prompt_tokens,
                                             exchange.completion_tokens))
    finally:
        reply.cancel()
        gone.cancel()
        exchange.close()


async def disconnected(request: Request) -> None:
    """Returns when the client has gone (the body has been read: only a disconnect can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def stream_events(exchange: Exchange, completion: Completion):
    yield event(completion.first())
    try:
        async for text in exchange.text():
            yield event(completion.text(text))
    except APIError as exc:  # the 200 has gone out: the error is the stream's last event
        exchange.hub.metrics.errors.labels(exc.code).inc()
        yield event(exc.body())
        return
    yield event(completion.last(exchange.finish_reason))
    if completion.include_usage:
        yield event(completion.usage_chunk(exchange.prompt_tokens, exchange.completion_tokens))
    yield DONE


class EventStream(StreamingResponse):
    """Server-Sent Events that always end their exchange, however the response ends: finished,
    client gone (Starlette cancels the stream when it hears the disconnect), or failed."""

    def __init__(self, events, on_close):
        super().__init__(events, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
