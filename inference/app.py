"""The FastAPI application of the bundled inference service.

Routes: OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/models``; ``/generate`` (``{prompt, max_tokens}``); ``/health``, ``/ready``,
``/metrics``; ``/admin/drain`` for routers. Every error answers with a JSON body of
the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference import responses
from inference.schemas import ChatCompletionRequest, CompletionRequest, GenerateRequest
from inference.service import Completion, InferenceService, Prepared, ServiceError
from inference.settings import ServiceSettings

__all__ = ["create_app"]


class DrainRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # "exit": "yes" is not a yes

    exit: bool = False


def create_app(settings: ServiceSettings | None = None, service: InferenceService | None = None) -> FastAPI:
    """Build the app; the model loads in its lifespan, before the first request."""
    service = service or InferenceService(settings or ServiceSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="inferplane inference service", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.state.exit_requested = asyncio.Event()
    _add_error_handlers(app)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        service.check_api_key(authorization)

    guarded = [Depends(authorized)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        body = {
            "ready": service.ready and not service.draining,
            "draining": service.draining,
            "in_flight": service.in_flight,
            "model": service.settings.served_name,
            "cpu_threads": service.cpu_threads,
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, Any]:
        card = {"id": service.settings.served_name, "object": "model", "created": 0, "owned_by": "inferplane"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        messages = [{"role": _role(m.role), "content": m.text()} for m in body.messages]
        return await _complete(
            request,
            "chat",
            body,
            lambda: service.prepare_chat(messages, **_sampling(body, body.requested_max_tokens)),
        )

    @app.post("/v1/completions", dependencies=guarded)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        prompt = str(body.prompt)
        return await _complete(
            request,
            "text",
            body,
            lambda: service.prepare_text(prompt, **_sampling(body, body.requested_max_tokens)),
        )

    @app.post("/generate", dependencies=guarded)
    async def generate(body: GenerateRequest, request: Request) -> dict[str, Any]:
        with service.admit():
            prepared = service.prepare_text(
                body.prompt, max_tokens=body.max_tokens, temperature=body.temperature
            )
            text, done = await _until_disconnect(request, _collect(service, prepared))
        return {
            "text": text,
            "prompt_tokens": done.prompt_tokens,
            "generated_tokens": done.completion_tokens,
            "finish_reason": done.finish_reason,
        }

    @app.post("/admin/drain", dependencies=guarded)
    async def drain(body: DrainRequest | None = None) -> dict[str, Any]:
        service.begin_drain()
        if body is not None and body.exit:
            app.state.exit_requested.set()
        return {"draining": True, "in_flight": service.in_flight}

    async def _complete(request: Request, shape: responses.Shape, body: Any, prepare: Any) -> Response:
        stack = ExitStack()
        stack.enter_context(service.admit())
        try:
            prepared: Prepared = prepare()
        except BaseException:
            stack.close()
            raise
        model, request_id = service.settings.served_name, responses.new_id(shape)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(service, prepared, shape, request_id, model, include_usage)
            return _AdmittedStream(events, stack)
        with stack:
            text, done = await _until_disconnect(request, _collect(service, prepared))
        return JSONResponse(
            responses.final(
                shape, request_id, model, text, done.finish_reason, done.prompt_tokens, done.completion_tokens
            )
        )

    return app


def _role(role: str) -> str:
    # OpenAI's newer "developer" role plays the part chat templates call "system".
    return "system" if role == "developer" else role


def _sampling(body: Any, max_tokens: int | None) -> dict[str, Any]:
    return {
        "max_tokens": max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop_strings,
    }


async def _collect(service: InferenceService, prepared: Prepared) -> tuple[str, Completion]:
    parts: list[str] = []
    done: Completion | None = None
    async for item in service.generate(prepared):
        if isinstance(item, Completion):
            done = item
        else:
            parts.append(item)
    assert done is not None
    return "".join(parts), done


class ClientGone(ServiceError):
    status, kind = 499, "client_closed_request"


async def _until_disconnect(request: Request, work: Any) -> Any:
    """Run ``work``; if the client disconnects first, cancel it so it stops using compute."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ClientGone("the client closed the connection before the answer was ready")


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _AdmittedStream(StreamingResponse):
    """A streamed answer that holds its request's admission place until it is fully sent.

    Released here rather than in the body iterator: when a client disconnects before the
    first chunk, the iterator never starts and its cleanup never runs.
    """

    def __init__(self, events: AsyncIterator[bytes], admission: ExitStack) -> None:
        super().__init__(events, media_type="text/event-stream")
        self._admission = admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with self._admission:
            await super().__call__(scope, receive, send)


async def _sse(
    service: InferenceService,
    prepared: Prepared,
    shape: responses.Shape,
    request_id: str,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """Server-sent events of one generation, ending with ``data: [DONE]``."""
    async with AsyncExitStack() as stack:
        generation = service.generate(prepared)
        stack.push_async_callback(generation.aclose)  # cancels the work if the client left
        first = True
        try:
            async for item in generation:
                if isinstance(item, Completion):
                    yield responses.sse(responses.chunk(shape, request_id, model, None, item.finish_reason))
                    if include_usage:
                        counts = responses.usage(item.prompt_tokens, item.completion_tokens)
                        yield responses.sse(
                            responses.chunk(shape, request_id, model, None, usage_counts=counts)
                        )
                    continue
                if first and shape == "chat":
                    yield responses.sse(responses.chunk(shape, request_id, model, ""))
                first = False
                yield responses.sse(responses.chunk(shape, request_id, model, item))
        except ServiceError as error:
            # Headers are gone already: the error travels as an event, as OpenAI does.
            yield responses.sse(responses.error_body(error.message, error.kind, error.param))
        yield responses.sse("[DONE]")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        if error.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        body = responses.error_body(error.message, error.kind, error.param)
        return JSONResponse(body, status_code=error.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown paths, wrong methods and unparsable bodies: the OpenAI shape, like every error.
        message = f"{error.detail}: {request.method} {request.url.path}"
        body = responses.error_body(message, "invalid_request_error", None)
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [_describe(problem) for problem in error.errors()]
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if "the body must be a JSON object" in problems and kind != "application/json":
            problems = [
                f"send the body as JSON with 'Content-Type: application/json' (got {kind or 'none'!r})"
            ]
        message = "invalid request: " + "; ".join(problems)
        first = error.errors()[0] if error.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(responses.error_body(message, "invalid_request_error", param), status_code=400)


def _describe(problem: dict[str, Any]) -> str:
    if problem.get("type") == "json_invalid":
        return f"the body is not valid JSON ({problem.get('ctx', {}).get('error', 'parse error')})"
    where = ".".join(str(p) for p in problem.get("loc", ())[1:]) or "body"
    if where == "body" and problem.get("type") in ("model_attributes_type", "dict_type", "missing"):
        return "the body must be a JSON object"
    return f"{where}: {problem.get('msg', 'invalid')}"
