"""``inferplane profile``: measure a replica's capacity and write the capacity file.

Against a running OpenAI-compatible server (the bundled service, vLLM, TGI by URL) with
nothing else sending to it: streamed chat completions with prompts of several sizes and
one output token time the prefill; ``batch`` requests streaming together time a decode
step at each batch size (the mean gap between their tokens). :mod:`autoscaler.profile`
fits the figures; the slots, the KV cache and the cold start are settings of the server
and its deployment, given as options. The file is what ``capacity_file`` names and what
``inferplane replay`` reads::

    inferplane profile --url http://127.0.0.1:8000 --output my-endpoint.capacity.yaml
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer

from autoscaler.profile import DecodeSample, PrefillSample, fit_capacity, render_capacity
from commands.cli_common import fail
from inference.trace import synthetic_prompt

__all__ = ["profile"]


def profile(
    url: Annotated[str, typer.Option(help="the server's base URL (without /v1)")],
    output: Annotated[Path, typer.Option(help="capacity file to write")],
    model: Annotated[str | None, typer.Option(help="model name (default: the server's first)")] = None,
    prompt_tokens: Annotated[
        list[int] | None, typer.Option(help="prompt sizes timed for prefill (repeatable)")
    ] = None,
    batch: Annotated[list[int] | None, typer.Option(help="batch sizes timed for decode (repeatable)")] = None,
    decode_tokens: Annotated[int, typer.Option(help="tokens each decode request streams")] = 32,
    repeats: Annotated[int, typer.Option(help="requests per prompt size (the median is kept)")] = 3,
    max_sequences: Annotated[
        int, typer.Option(help="sequences the server runs at once (vLLM max_num_seqs; bundled: 32)")
    ] = 32,
    kv_cache_tokens: Annotated[int | None, typer.Option(help="KV cache size in tokens, if known")] = None,
    cold_start: Annotated[float, typer.Option(help="seconds from start to ready (deployment's)")] = 60.0,
    timeout: Annotated[float, typer.Option(help="seconds one request may take")] = 300.0,
) -> None:
    """Measure a replica's prefill rate and decode step, and write its capacity file."""
    sizes = sorted(set(prompt_tokens or [32, 256, 512]))
    batches = sorted(set(batch or [1, 4]))
    problems = [f"--prompt-tokens {n}: expected >= 1" for n in sizes if n < 1]
    problems += [
        f"--batch {n}: expected 1..--max-sequences ({max_sequences})"
        for n in batches
        if not 1 <= n <= max_sequences
    ]
    if len(sizes) < 2:
        problems.append("--prompt-tokens: give at least two sizes")
    if len(batches) < 2:
        problems.append("--batch: give at least two batch sizes")
    if repeats < 1 or decode_tokens < 2:
        problems.append("--repeats must be >= 1 and --decode-tokens >= 2")
    if not (math.isfinite(timeout) and timeout > 0):
        problems.append(f"--timeout must be a positive number of seconds, got {timeout}")
    if problems:
        fail("; ".join(problems))
    shown = _without_credentials(url)  # a user:password@ in the URL is never printed or written
    try:
        prefill, decode, name = asyncio.run(
            _measure(url.rstrip("/"), model, sizes, batches, decode_tokens, repeats, timeout)
        )
        capacity = fit_capacity(
            prefill,
            decode,
            max_concurrent_sequences=max_sequences,
            cold_start_s=cold_start,
            kv_cache_tokens=kv_cache_tokens,
        )
    except json.JSONDecodeError as error:
        fail(f"profile {shown}: an answer is not JSON ({error}); is this an OpenAI-compatible server?")
    except httpx.TimeoutException as error:
        fail(f"profile {shown}: no answer within --timeout {timeout:g} s ({type(error).__name__})")
    except (httpx.HTTPError, _ProfileError, ValueError) as error:
        fail(f"profile {shown}: {str(error) or type(error).__name__}")
    header = [
        f"Capacity of one replica of {name} at {shown}, measured by `inferplane profile`",
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "Prefill (prompt tokens, median time to first token): "
        + ", ".join(f"{s.prompt_tokens}: {s.ttft_s:.3f} s" for s in prefill),
        "Decode (batch, mean gap between tokens): "
        + ", ".join(f"{s.batch}: {s.step_s:.4f} s" for s in decode),
        f"Given, not measured: max_concurrent_sequences {max_sequences}, cold_start_s {cold_start:g}"
        + (f", kv_cache_tokens {kv_cache_tokens}" if kv_cache_tokens else ""),
    ]
    output.write_text(render_capacity(capacity, header), encoding="utf-8")
    typer.echo(
        f"wrote {output}: prefill {capacity.prefill_tokens_per_s:,.0f} tokens/s, decode step "
        f"{capacity.decode_step_base_s * 1000:.1f} ms"
        f" + {capacity.decode_step_per_sequence_s * 1000:.2f} ms per sequence"
    )


class _ProfileError(Exception):
    """The server answered, but not as an OpenAI-compatible server would."""


async def _measure(
    url: str,
    model: str | None,
    sizes: list[int],
    batches: list[int],
    decode_tokens: int,
    repeats: int,
    timeout: float,
) -> tuple[list[PrefillSample], list[DecodeSample], str]:
    limits = httpx.Limits(max_connections=max(batches) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        name = model or await _first_model(client)
        await _stream(client, name, synthetic_prompt(8), 2)  # warm-up: nothing timed
        prefill = []
        for size in sizes:
            runs = [await _stream(client, name, synthetic_prompt(size), 1) for _ in range(repeats)]
            tokens = runs[0]["prompt_tokens"] or size
            prefill.append(PrefillSample(tokens, statistics.median(r["ttft_s"] for r in runs)))
        decode = []
        for n in batches:
            runs = await asyncio.gather(
                *(_stream(client, name, synthetic_prompt(16 + k), decode_tokens) for k in range(n))
            )
            gaps = [g for r in runs for g in r["gaps"]]
            if not gaps:
                raise _ProfileError(f"no tokens streamed at batch {n}; does the server stream?")
            decode.append(DecodeSample(n, statistics.mean(gaps)))
    return prefill, decode, name


async def _first_model(client: httpx.AsyncClient) -> str:
    reply = await client.get("/v1/models")
    reply.raise_for_status()
    data = reply.json().get("data") or []
    if not data:
        raise _ProfileError("GET /v1/models lists no model; name one with --model")
    return str(data[0]["id"])


async def _stream(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed request: time to the first content, the gaps between later chunks, and
    the prompt tokens the server counted."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    times: list[float] = []
    prompt_tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        if reply.status_code != 200:
            raise _ProfileError(
                f"POST /v1/chat/completions: {reply.status_code} {(await reply.aread())[:200]!r}"
            )
        async for line in reply.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                prompt_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
            elif any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                times.append(time.perf_counter())
    if not times:
        raise _ProfileError("the reply streamed no content")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"ttft_s": times[0] - started, "gaps": gaps, "prompt_tokens": prompt_tokens}


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
