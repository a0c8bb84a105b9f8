"""``inferplane bench inference``: what batching buys, measured in one run.

In one run, on one machine, so that the figures compare as ratios:
- cold start: process start to ``/ready`` with the cached model (median of a few starts);
- the batched service and the same service with batching off (maximum batch 1, the
  one-request-at-a-time server of the reference article), at each client count: tokens
  per second, p50/p95 request latency and time to first token;
- optionally the other engines, batched, at the highest client count;
- the ceiling: the raw model's own batched ``generate`` of N sequences in this process,
  no HTTP.

Clients are closed-loop (each sends its next request when the last one finished) and
stream, so time to first token is what a user would see. Requests are greedy and the
response cache is off, so every mode generates the same tokens for the same prompts.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inference.replica_process import start_replica

__all__ = ["BenchOptions", "run_benchmark", "summary"]

Progress = Callable[[str], None]

_TOPICS = ["the sea", "a city at night", "mountains", "a robot", "the moon", "a library", "rain", "a cat"]


@dataclass
class BenchOptions:
    model: str
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    max_tokens: int = 64
    requests_per_client: int = 1
    max_batch_size: int = 32
    cold_starts: int = 5
    engines: list[str] = field(default_factory=lambda: ["dynamic"])


def prompt(index: int) -> str:
    return f"Write a long, detailed story about {_TOPICS[index % len(_TOPICS)]} (story {index})."


@dataclass
class _Sample:
    latency_s: float
    ttft_s: float | None
    tokens: int


async def _one_request(client: httpx.AsyncClient, index: int, max_tokens: int) -> _Sample:
    body = {
        "messages": [{"role": "user", "content": prompt(index)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"bench request failed: {reply.status_code} {await reply.aread()!r}")
        async for line in reply.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif ttft is None and any(c["delta"].get("content") for c in chunk["choices"]):
                ttft = time.perf_counter() - started
    return _Sample(time.perf_counter() - started, ttft, tokens)


async def _drive(url: str, clients: int, requests_per_client: int, max_tokens: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def client_loop(number: int) -> list[_Sample]:
            return [
                await _one_request(client, number * requests_per_client + i, max_tokens)
                for i in range(requests_per_client)
            ]

        started = time.perf_counter()
        per_client = await asyncio.gather(*(client_loop(n) for n in range(clients)))
        wall = time.perf_counter() - started
    samples = [s for group in per_client for s in group]
    return _describe(samples, wall)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def _describe(samples: list[_Sample], wall_s: float) -> dict[str, Any]:
    tokens = sum(s.tokens for s in samples)
    latencies = [s.latency_s for s in samples]
    ttfts = [s.ttft_s for s in samples if s.ttft_s is not None]
    return {
        "requests": len(samples),
        "generated_tokens": tokens,
        "wall_s": round(wall_s, 3),
        "tokens_per_s": round(tokens / wall_s, 2),
        "latency_p50_s": _round(_quantile(latencies, 0.5)),
        "latency_p95_s": _round(_quantile(latencies, 0.95)),
        "ttft_p50_s": _round(_quantile(ttfts, 0.5)),
        "ttft_p95_s": _round(_quantile(ttfts, 0.95)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _serve_and_measure(
    log_dir: Path, settings: dict[str, object], options: BenchOptions, levels: list[int], progress: Progress
) -> tuple[float, dict[str, Any]]:
    replica = start_replica(log_dir, settings)
    try:
        results = {}
        for clients in levels:
            progress(f"  {clients} clients ...")
            results[str(clients)] = asyncio.run(
                _drive(replica.url, clients, options.requests_per_client, options.max_tokens)
            )
            progress(f"  {clients} clients: {results[str(clients)]['tokens_per_s']} tokens/s")
        return replica.ready_after_s, results
    finally:
        replica.stop()


def _cold_starts(log_dir: Path, settings: dict[str, object], runs: int, progress: Progress) -> list[float]:
    times = []
    for run in range(runs):
        replica = start_replica(log_dir, settings)
        times.append(round(replica.ready_after_s, 3))
        replica.stop()
        progress(f"cold start {run + 1}/{runs}: {times[-1]} s")
    return times


def _raw_ceiling(model_name: str, sequences: int, max_tokens: int) -> dict[str, Any]:
    """The model's own batched generate of ``sequences`` prompts: no HTTP, no scheduler."""
    import torch

    from inference.loading import load_model
    from inference.model_store import resolve

    loaded = load_model(resolve(model_name))
    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt(i)}], add_generation_prompt=True, tokenize=False
        )
        for i in range(sequences)
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(loaded.device)
    eos = loaded.eos_token_ids
    with torch.inference_mode():
        started = time.perf_counter()
        out = loaded.model.generate(
            **batch, max_new_tokens=max_tokens, do_sample=False, pad_token_id=loaded.pad_token_id
        )
        wall = time.perf_counter() - started
    tokens = 0
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        tokens += next((i for i, t in enumerate(row) if t in eos), len(row))
    return {
        "sequences": sequences,
        "generated_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> dict[str, Any]:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": gpu,
        "python": platform.python_version(),
    }


def run_benchmark(options: BenchOptions, progress: Progress = print) -> dict[str, Any]:
    """Run every measurement and return the JSON-ready results."""
    top = max(options.concurrency)
    base: dict[str, object] = {
        "model": options.model,
        "cache": "off",
        "max_queue": 4 * top,
        "max_tokens_limit": max(options.max_tokens, 16),
    }
    with tempfile.TemporaryDirectory(prefix="inferplane-bench-") as scratch:
        logs = Path(scratch)
        batched = {**base, "max_batch_size": options.max_batch_size, "engine": options.engines[0]}
        cold = _cold_starts(logs, batched, options.cold_starts, progress)
        modes: dict[str, dict[str, Any]] = {}
        progress(f"batched service (engine {options.engines[0]}, max batch {options.max_batch_size})")
        _, modes["batched"] = _serve_and_measure(logs, batched, options, options.concurrency, progress)
        progress("naive service (max batch 1)")
        _, modes["naive"] = _serve_and_measure(
            logs, {**base, "max_batch_size": 1}, options, options.concurrency, progress
        )
        for engine in options.engines[1:]:
            progress(f"batched service, engine {engine}")
            _, modes[f"batched_{engine}"] = _serve_and_measure(
                logs, {**batched, "engine": engine}, options, [top], progress
            )
    progress(f"raw model, one batch of {top} sequences")
    raw = _raw_ceiling(options.model, top, options.max_tokens)
    tokens_per_s = {mode: {c: r["tokens_per_s"] for c, r in runs.items()} for mode, runs in modes.items()}
    tokens_per_s["raw"] = {str(top): raw["tokens_per_s"]}
    return {
        "machine": _machine(),
        "options": asdict(options),
        "cold_start_seconds": statistics.median(cold),
        "cold_start_runs": cold,
        "tokens_per_s": tokens_per_s,
        f"speedup_at_{top}": round(
            modes["batched"][str(top)]["tokens_per_s"] / modes["naive"][str(top)]["tokens_per_s"], 2
        ),
        f"service_vs_raw_at_{top}": round(
            modes["batched"][str(top)]["tokens_per_s"] / raw["tokens_per_s"], 3
        ),
        "modes": modes,
        "raw": raw,
    }


def summary(results: dict[str, Any]) -> str:
    """A short human-readable table of the results."""
    lines = [f"cold start (median of {len(results['cold_start_runs'])}): {results['cold_start_seconds']} s"]
    for mode, runs in results["modes"].items():
        for clients, r in runs.items():
            lines.append(
                f"{mode:>18} x{clients:>3}: {r['tokens_per_s']:>8} tok/s  "
                f"p50 {r['latency_p50_s']} s  p95 {r['latency_p95_s']} s  "
                f"ttft p50 {r['ttft_p50_s']} s  p95 {r['ttft_p95_s']} s"
            )
    lines.append(
        f"{'raw generate':>18} x{results['raw']['sequences']:>3}: {results['raw']['tokens_per_s']:>8} tok/s"
    )
    lines += [f"{k}: {v}" for k, v in results.items() if k.startswith(("speedup_at", "service_vs_raw"))]
    return "\n".join(lines)
