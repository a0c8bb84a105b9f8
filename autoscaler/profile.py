"""A replica's capacity from measurements (pure): what ``inferplane profile`` fits and writes.

Two kinds of measurement, taken against a running OpenAI-compatible server:

- :class:`PrefillSample`: a streamed request's prompt tokens and its time to first token
  (``max_tokens`` 1, alone on the replica). Prefill rate = the slope of prompt tokens
  against time to first token (least squares), so the fixed costs (HTTP, queueing, the
  first decode step) fall into the intercept;
- :class:`DecodeSample`: the mean gap between streamed tokens while ``batch`` requests
  decode together. Decode step = ``base + per_sequence x batch``, fitted the same way.

The slots (``max_concurrent_sequences``), the KV cache and the cold start are settings of
the server and its deployment, not something a client can time: they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.capacity import Capacity

__all__ = ["DecodeSample", "PrefillSample", "fit_capacity", "line_fit", "render_capacity"]


@dataclass(frozen=True)
class PrefillSample:
    prompt_tokens: int
    ttft_s: float


@dataclass(frozen=True)
class DecodeSample:
    batch: int
    step_s: float


def line_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope); ValueError when the x values do not vary."""
    n = len(points)
    if n < 2:
        raise ValueError(f"need at least two measurements to fit a line, got {n}")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread <= 0:
        raise ValueError("the measurements do not vary in size; use at least two prompt sizes or batches")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def fit_capacity(
    prefill: Sequence[PrefillSample],
    decode: Sequence[DecodeSample],
    *,
    max_concurrent_sequences: int,
    cold_start_s: float,
    kv_cache_tokens: int | None = None,
) -> Capacity:
    """The capacity the samples show; ValueError when they cannot give one (a prefill that
    does not take longer for longer prompts, a decode step that is not positive)."""
    _, seconds_per_token = line_fit([(s.prompt_tokens, s.ttft_s) for s in prefill])
    if seconds_per_token <= 0:
        raise ValueError(
            "time to first token did not grow with the prompt "
            f"({', '.join(f'{s.prompt_tokens} tokens: {s.ttft_s:.3f} s' for s in prefill)}); "
            "use longer prompts so that prefill outweighs the noise"
        )
    base, per_sequence = line_fit([(s.batch, s.step_s) for s in decode])
    if base + per_sequence <= 0:
        raise ValueError(f"the fitted decode step at batch 1 is not positive ({base + per_sequence:.4f} s)")
    # A slope below zero is noise (a step never gets shorter with more sequences): the
    # mean step then stands for every batch.
    if per_sequence < 0:
        base, per_sequence = sum(s.step_s for s in decode) / len(decode), 0.0
    return Capacity(
        prefill_tokens_per_s=round(1.0 / seconds_per_token, 1),
        decode_step_base_s=round(max(base, 1e-6), 6),
        decode_step_per_sequence_s=round(per_sequence, 6),
        max_concurrent_sequences=max_concurrent_sequences,
        cold_start_s=cold_start_s,
        kv_cache_tokens=kv_cache_tokens,
    )


def render_capacity(capacity: Capacity, header: Sequence[str]) -> str:
    """The capacity file's text: ``header`` lines as comments, then the figures."""
    lines = [f"# {line}" if line else "#" for line in header]
    for name, value in vars(capacity).items():
        if value is not None:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"
