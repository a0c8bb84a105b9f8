"""Request traces for load tests: read, scale in time and tokens, and make prompts.

The packaged trace is one hour of a code-completion workload from the Azure Public
Dataset ("Azure LLM inference trace 2023", CC-BY 4.0; see ``inference/data/README.md``)::

    requests = scale_trace(load_trace(), time_scale=10, token_scale=0.05,
                           max_prompt_tokens=1024, max_generated_tokens=256)
    for r in requests:
        ...  # send synthetic_prompt(r.prompt_tokens) at r.offset_s, max_tokens=r.generated_tokens

Everything here is pure apart from reading the file; bad input raises ``ValueError``
naming the file, line or argument.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

__all__ = ["TraceRequest", "load_trace", "scale_trace", "synthetic_prompt"]

_PACKAGED_TRACE = "data/azure_llm_2023_code.csv"
_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
# Each word is one token for the SmolLM2/GPT-2 style tokenizers (with its leading space),
# and the mix keeps the prompt from being one token repeated.
_WORDS = ("the", "data", "model", "token", "request", "reply", "cost", "time", "load", "queue")


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace: when it arrives and how large it is."""

    offset_s: float
    """Seconds after the first request of the trace."""
    prompt_tokens: int
    generated_tokens: int


def load_trace(path: str | Path | None = None) -> list[TraceRequest]:
    """Read a trace CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``), ordered by arrival.

    Without ``path`` the packaged Azure code trace (8,818 requests) is read.
    """
    name = f"inference/{_PACKAGED_TRACE}" if path is None else str(path)
    try:
        if path is None:
            text = resources.files("inference").joinpath(_PACKAGED_TRACE).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read trace file {name}: {error}") from error
    rows = _parse(text, name)
    if not rows:
        raise ValueError(f"trace file {name} holds no requests")
    rows.sort(key=lambda row: row[0])
    first = rows[0][0]
    return [TraceRequest((at - first).total_seconds(), prompt, generated) for at, prompt, generated in rows]


def _parse(text: str, name: str) -> list[tuple[datetime, int, int]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in _COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"trace file {name} lacks column(s) {', '.join(missing)}; expected {_COLUMNS}")
    rows = []
    for row in reader:
        where = f"{name}, line {reader.line_num}"
        try:
            at = datetime.fromisoformat(row["TIMESTAMP"])
            prompt, generated = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: malformed row {row!r} ({error})") from error
        if prompt < 0 or generated < 0:
            raise ValueError(f"{where}: token counts must not be negative, got {prompt}, {generated}")
        rows.append((at, prompt, generated))
    return rows


def scale_trace(
    requests: Iterable[TraceRequest],
    time_scale: float = 1.0,
    token_scale: float = 1.0,
    max_prompt_tokens: int | None = None,
    max_generated_tokens: int | None = None,
) -> list[TraceRequest]:
    """Speed a trace up and shrink its requests.

    ``time_scale`` 10 replays ten times faster (offsets divided by 10); token counts are
    multiplied by ``token_scale``, rounded, and clamped to at least 1 and to the maxima.
    """
    _require_positive("time_scale", time_scale)
    _require_positive("token_scale", token_scale)
    limits = {"max_prompt_tokens": max_prompt_tokens, "max_generated_tokens": max_generated_tokens}
    for label, limit in limits.items():
        if limit is not None and limit < 1:
            raise ValueError(f"{label} must be at least 1, got {limit}")
    return [
        TraceRequest(
            r.offset_s / time_scale,
            _scale_tokens(r.prompt_tokens, token_scale, max_prompt_tokens),
            _scale_tokens(r.generated_tokens, token_scale, max_generated_tokens),
        )
        for r in requests
    ]


def _require_positive(label: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{label} must be a positive finite number, got {value}")


def _scale_tokens(tokens: int, scale: float, limit: int | None) -> int:
    scaled = max(1, round(tokens * scale))
    return scaled if limit is None else min(scaled, limit)


def synthetic_prompt(n_tokens: int) -> str:
    """A prompt of about ``n_tokens`` tokens: common English words, one token each."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be at least 1, got {n_tokens}")
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n_tokens))
