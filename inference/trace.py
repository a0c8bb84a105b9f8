"""Request traces for load tests: read, scale in time and tokens, and make prompts.

The packaged trace is one hour of a code-completion workload from the Azure Public
Dataset ("Azure LLM inference trace 2023", CC-BY 4.0; see ``inference/data/README.md``)::

    requests = scale_trace(load_trace(), time_scale=10, token_scale=0.05,
                           max_prompt_tokens=1024, max_generated_tokens=256)
    for r in requests:
        ...  # send synthetic_prompt(r.prompt_tokens) at r.offset_s, max_tokens=r.generated_tokens

Three published trace formats are read, told apart by their header (the first line):

- Azure LLM inference traces (2023 and 2024): CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``,
  ISO times;
- BurstGPT (HPMLL/BurstGPT): CSV ``Timestamp,Model,Request tokens,Response tokens,...``,
  seconds from the trace's start (every model and log type is kept: filter the file
  first to replay one);
- Mooncake (kvcache-ai/Mooncake's ``traces/*.jsonl``): one JSON object a line with
  ``timestamp`` (milliseconds), ``input_length`` and ``output_length`` (``hash_ids`` is
  ignored).

Everything here is pure apart from reading the file; bad input raises ``ValueError``
naming the file, line or argument.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

__all__ = ["TraceRequest", "load_trace", "scale_trace", "synthetic_prompt"]

_PACKAGED_TRACE = "data/azure_llm_2023_code.csv"
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
    """Read a trace (any format of the module docstring), ordered by arrival.

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


# (arrival after a fixed origin, prompt tokens, generated tokens): a timedelta, so an ISO
# time's offset is exact to the microsecond, as it was before other formats were read.
_Row = tuple[timedelta, int, int]
_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
_FORMATS = (
    "an Azure LLM inference trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens), "
    "a BurstGPT CSV (Timestamp,...,Request tokens,Response tokens,...) "
    "or Mooncake JSON lines (timestamp, input_length, output_length)"
)
_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURSTGPT = ("Timestamp", "Request tokens", "Response tokens")


def _parse(text: str, name: str) -> list[_Row]:
    if text.lstrip().startswith("{"):
        return _parse_json_lines(text, name)
    reader = csv.DictReader(io.StringIO(text))
    header = set(reader.fieldnames or ())
    if header.issuperset(_AZURE):
        return _parse_csv(reader, name, _AZURE, _from_iso)
    if header.issuperset(_BURSTGPT):
        return _parse_csv(reader, name, _BURSTGPT, _from_seconds)
    raise ValueError(
        f"trace file {name} is none of the formats read: its header is {sorted(header)}; expected {_FORMATS}"
    )


def _from_iso(text: str) -> timedelta:
    at = datetime.fromisoformat(text)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) - _ORIGIN


def _from_seconds(text: str) -> timedelta:
    return _after_origin(float(text))


def _after_origin(seconds: float) -> timedelta:
    if not math.isfinite(seconds):
        raise ValueError(f"the arrival time must be finite, got {seconds}")
    return timedelta(seconds=seconds)


def _parse_csv(
    reader: csv.DictReader[str], name: str, columns: tuple[str, str, str], arrival: Callable[[str], timedelta]
) -> list[_Row]:
    time_column, prompt_column, generated_column = columns
    rows = []
    for row in reader:
        where = f"{name}, line {reader.line_num}"
        try:
            at = arrival(row[time_column])
            prompt, generated = int(row[prompt_column]), int(row[generated_column])
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"{where}: malformed row {row!r} ({error})") from error
        rows.append(_checked(where, at, prompt, generated))
    return rows


def _parse_json_lines(text: str, name: str) -> list[_Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            record = json.loads(line)
            at = _after_origin(float(record["timestamp"]) / 1000)  # milliseconds
            prompt, generated = int(record["input_length"]), int(record["output_length"])
        except (KeyError, TypeError, ValueError, OverflowError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(f"{where}: malformed record ({error!r}); expected {_FORMATS}") from error
        rows.append(_checked(where, at, prompt, generated))
    return rows


def _checked(where: str, at: timedelta, prompt: int, generated: int) -> _Row:
    if prompt < 0 or generated < 0:
        raise ValueError(f"{where}: token counts must not be negative, got {prompt}, {generated}")
    return at, prompt, generated


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
