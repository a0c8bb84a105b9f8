"""What one replica can do: prefill rate, decode step time, slots, cold start.

The capacity-aware policy turns demand into replicas through it, the replay simulates
replicas with it, and ``inferplane profile`` measures it. Read from a small YAML file
(``examples/replay-a100.capacity.yaml``)::

    capacity = load_capacity(Path("examples/replay-a100.capacity.yaml"))
    capacity.decode_step_s(32)   # seconds of one decode step with 32 sequences batched

Unknown keys and bad values raise ``ValueError`` naming the key and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Capacity", "capacity_from_mapping", "load_capacity"]


@dataclass(frozen=True)
class Capacity:
    """One replica's capacity model (times in seconds).

    A prefill runs alone at ``prefill_tokens_per_s``; a decode step for ``n`` batched
    sequences takes ``decode_step_base_s + decode_step_per_sequence_s * n``. A replica
    admits up to ``max_concurrent_sequences`` requests, and (when set) only while their
    prompt plus generated tokens fit in ``kv_cache_tokens``."""

    prefill_tokens_per_s: float
    decode_step_base_s: float
    decode_step_per_sequence_s: float
    max_concurrent_sequences: int
    cold_start_s: float
    kv_cache_tokens: int | None = None

    def __post_init__(self) -> None:
        positive = ("prefill_tokens_per_s", "decode_step_base_s", "max_concurrent_sequences")
        for name in positive:
            _check(name, getattr(self, name), lambda v: v > 0, "a positive number")
        for name in ("decode_step_per_sequence_s", "cold_start_s"):
            _check(name, getattr(self, name), lambda v: v >= 0, "a number >= 0")
        if self.kv_cache_tokens is not None:
            _check("kv_cache_tokens", self.kv_cache_tokens, lambda v: v > 0, "a positive number")

    def decode_step_s(self, batch: int) -> float:
        """Seconds one decode step takes with ``batch`` sequences."""
        return self.decode_step_base_s + self.decode_step_per_sequence_s * batch

    def prefill_s(self, prompt_tokens: int) -> float:
        """Seconds the prefill of ``prompt_tokens`` takes on an otherwise idle replica."""
        return prompt_tokens / self.prefill_tokens_per_s

    def alone_ttft_s(self, prompt_tokens: int) -> float:
        """The best time to first token a request can get: prefill plus one decode step."""
        return self.prefill_s(prompt_tokens) + self.decode_step_s(1)


def _check(name: str, value: Any, ok: Any, expected: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not ok(value)
    ):
        raise ValueError(f"capacity.{name}: expected {expected}, got {value!r}")


def capacity_from_mapping(data: Mapping[str, Any]) -> Capacity:
    """Build a :class:`Capacity` from a parsed YAML mapping; ValueError says what is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError(f"capacity: expected a mapping of capacity figures, got {type(data).__name__}")
    known = {f.name for f in fields(Capacity)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"capacity: unknown key(s) {', '.join(unknown)}; expected some of {sorted(known)}")
    missing = sorted(f.name for f in fields(Capacity) if f.name not in data and f.name != "kv_cache_tokens")
    if missing:
        raise ValueError(f"capacity: missing key(s) {', '.join(missing)}")
    for name in ("max_concurrent_sequences", "kv_cache_tokens"):
        value = data.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"capacity.{name}: expected a whole number, got {value!r}")
    return Capacity(**dict(data))


def load_capacity(path: Path) -> Capacity:
    """Read a capacity file; ValueError names the file and what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return capacity_from_mapping(data)
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise ValueError(f"capacity file {path}: {error}") from error
