"""OpenAI-compatible response bodies and server-sent-event chunks (pure functions)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

__all__ = ["Shape", "chunk", "error_body", "final", "new_id", "sse", "usage"]

Shape = Literal["chat", "text"]


def new_id(shape: Shape) -> str:
    prefix = "chatcmpl" if shape == "chat" else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _choice(shape: Shape, text: str | None, finish_reason: str | None, delta: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason}
    if shape == "text":
        choice.update(text=text or "", logprobs=None)
    elif delta:
        choice["delta"] = {} if text is None else {"role": "assistant", "content": text}
    else:
        choice.update(message={"role": "assistant", "content": text}, logprobs=None)
    return choice


def _envelope(shape: Shape, request_id: str, model: str, stream: bool) -> dict[str, Any]:
    kind = {"chat": "chat.completion", "text": "text_completion"}[shape]
    return {
        "id": request_id,
        "object": kind + (".chunk" if stream and shape == "chat" else ""),
        "created": int(time.time()),
        "model": model,
    }


def final(
    shape: Shape,
    request_id: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """The whole, non-streamed response."""
    body = _envelope(shape, request_id, model, stream=False)
    body["choices"] = [_choice(shape, text, finish_reason, delta=False)]
    body["usage"] = usage(prompt_tokens, completion_tokens)
    return body


def chunk(
    shape: Shape,
    request_id: str,
    model: str,
    text: str | None,
    finish_reason: str | None = None,
    usage_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One streamed chunk; ``text=None`` with a finish reason closes the choice."""
    body = _envelope(shape, request_id, model, stream=True)
    body["choices"] = [] if usage_counts else [_choice(shape, text, finish_reason, delta=True)]
    if usage_counts:
        body["usage"] = usage_counts
    return body


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()
