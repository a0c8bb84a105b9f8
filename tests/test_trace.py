"""The request trace module and the Locust replay built on it."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from inference.trace import TraceRequest, load_trace, scale_trace, synthetic_prompt

LOCUSTFILE = Path(__file__).resolve().parents[1] / "bench" / "locustfile.py"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write_trace(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


# --- load_trace ---------------------------------------------------------------------------


def test_packaged_trace_is_the_azure_code_trace() -> None:
    trace = load_trace()
    # The shared README says 8,818; the file itself holds 8,819 data rows.
    assert len(trace) == 8819
    assert trace[0] == TraceRequest(0.0, 4808, 10)
    assert trace[-1].offset_s == pytest.approx(3435.948056)
    assert all(a.offset_s <= b.offset_s for a, b in pairwise(trace))


def test_offsets_are_from_the_first_request_in_time_order(tmp_path: Path) -> None:
    path = write_trace(
        tmp_path,
        HEADER + "2023-11-16 18:17:05.5000000,30,3\n"
        "2023-11-16 18:17:03.0000000,10,1\n"
        "2023-11-16 18:17:04.2500000,20,0\n",
    )
    assert load_trace(path) == [TraceRequest(0.0, 10, 1), TraceRequest(1.25, 20, 0), TraceRequest(2.5, 30, 3)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "none of the formats read", id="empty file"),
        pytest.param(HEADER, "holds no requests", id="header only"),
        pytest.param(
            "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,1\n",
            r"header is \['ContextTokens', 'TIMESTAMP'\]; expected an Azure .*GeneratedTokens",
            id="missing column",
        ),
        pytest.param(HEADER + "yesterday,1,2\n", "line 2: malformed row", id="bad timestamp"),
        pytest.param(HEADER + "2023-11-16 18:17:03,many,2\n", "malformed row", id="non-integer tokens"),
        pytest.param(HEADER + "2023-11-16 18:17:03,1\n", "malformed row", id="short row"),
        pytest.param(HEADER + "2023-11-16 18:17:03,1,-2\n", "must not be negative", id="negative tokens"),
    ],
)
def test_malformed_trace_is_a_value_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_trace(tmp_path, text)
    with pytest.raises(ValueError, match=message) as caught:
        load_trace(path)
    assert str(path) in str(caught.value)


def _as_burstgpt(requests: list[TraceRequest]) -> str:
    """BurstGPT's CSV (HPMLL/BurstGPT's README): seconds from the start, both models mixed."""
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for i, r in enumerate(requests):
        model = "GPT-4" if i % 2 else "ChatGPT"
        sizes = f"{r.prompt_tokens},{r.generated_tokens},{r.prompt_tokens + r.generated_tokens}"
        lines.append(f"{r.offset_s + 5:.6f},{model},{sizes},Conversation log")
    return "\n".join(lines) + "\n"


def as_mooncake(requests: list[TraceRequest]) -> str:
    """Mooncake's JSON lines (kvcache-ai/Mooncake traces/*.jsonl): integer milliseconds."""
    records = [
        {"timestamp": round(r.offset_s * 1000), "input_length": r.prompt_tokens,
         "output_length": r.generated_tokens, "hash_ids": [i, i + 1]}
        for i, r in enumerate(requests)
    ]  # fmt: skip
    return "".join(json.dumps(record) + "\n" for record in records)


@pytest.mark.parametrize(
    ("suffix", "write", "tolerance"),
    [(".csv", _as_burstgpt, 1e-6), (".jsonl", as_mooncake, 5.001e-4)],
)
def test_burstgpt_and_mooncake_files_read_as_the_same_requests(
    tmp_path: Path, suffix: str, write: Any, tolerance: float
) -> None:
    """The packaged Azure trace written out in each other format reads back as itself
    (offsets to the format's precision: microseconds, milliseconds)."""
    azure = load_trace()
    path = tmp_path / f"trace{suffix}"
    path.write_text(write(azure))
    again = load_trace(path)
    assert [(r.prompt_tokens, r.generated_tokens) for r in again] == [
        (r.prompt_tokens, r.generated_tokens) for r in azure
    ]
    assert max(abs(a.offset_s - b.offset_s) for a, b in zip(again, azure, strict=True)) <= tolerance
    assert again[0].offset_s == 0.0


def test_azure_2024_times_with_an_offset_read_as_utc(tmp_path: Path) -> None:
    path = write_trace(
        tmp_path, HEADER + "2024-05-10 00:00:01.009930+00:00,7,1\n2024-05-10 02:00:00+02:00,8,2\n"
    )
    assert load_trace(path) == [TraceRequest(0.0, 8, 2), TraceRequest(1.00993, 7, 1)]


_MOONCAKE_OK = '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
_BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param(
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5}\n',
            r"line 1: malformed record \(KeyError\('output_length'\)\)",
            id="missing field",
        ),
        pytest.param("t.jsonl", _MOONCAKE_OK + '{"timestamp": \n', "line 2: malformed record", id="broken"),
        pytest.param("t.jsonl", _MOONCAKE_OK.replace("0", '"NaN"', 1), "must be finite", id="nan time"),
        pytest.param("t.jsonl", _MOONCAKE_OK.replace("5", "-5"), "line 1: token counts", id="negative"),
        pytest.param("t.csv", _BURSTGPT_HEADER + "soon,GPT-4,1,2\n", "line 2: malformed row", id="bad time"),
        pytest.param(
            "t.csv",
            "time,prompt,output\n1,2,3\n",
            r"none of the formats read: its header is \['output', 'prompt', 'time'\]",
            id="unknown header",
        ),
    ],
)
def test_malformed_burstgpt_or_mooncake_is_a_value_error_naming_the_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_trace(path)
    assert str(path) in str(caught.value)


def test_missing_trace_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read trace file .*nowhere\.csv"):
        load_trace(tmp_path / "nowhere.csv")


# --- scale_trace ----------------------------------------------------------------------------

REQUESTS = [TraceRequest(0.0, 4808, 10), TraceRequest(5.0, 110, 27), TraceRequest(20.0, 0, 0)]


def test_time_scale_divides_offsets() -> None:
    scaled = scale_trace(REQUESTS, time_scale=10)
    assert [r.offset_s for r in scaled] == [0.0, 0.5, 2.0]
    assert [(r.prompt_tokens, r.generated_tokens) for r in scaled] == [(4808, 10), (110, 27), (1, 1)]


def test_slower_replay_with_time_scale_below_one() -> None:
    assert [r.offset_s for r in scale_trace(REQUESTS, time_scale=0.5)] == [0.0, 10.0, 40.0]


def test_token_scale_rounds_and_never_goes_below_one() -> None:
    scaled = scale_trace(REQUESTS, token_scale=0.05)
    assert [(r.prompt_tokens, r.generated_tokens) for r in scaled] == [(240, 1), (6, 1), (1, 1)]


def test_token_counts_are_clamped_to_the_maxima() -> None:
    scaled = scale_trace(REQUESTS, token_scale=2, max_prompt_tokens=1000, max_generated_tokens=32)
    assert [(r.prompt_tokens, r.generated_tokens) for r in scaled] == [(1000, 20), (220, 32), (1, 1)]


def test_scaling_leaves_the_input_alone() -> None:
    before = list(REQUESTS)
    scale_trace(REQUESTS, time_scale=3, token_scale=0.1)
    assert before == REQUESTS


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"time_scale": 0}, "time_scale must be a positive", id="zero time scale"),
        pytest.param({"time_scale": -10}, "time_scale must be a positive", id="negative time scale"),
        pytest.param({"time_scale": math.inf}, "time_scale must be a positive", id="infinite time scale"),
        pytest.param({"token_scale": 0}, "token_scale must be a positive", id="zero token scale"),
        pytest.param({"token_scale": math.nan}, "token_scale must be a positive", id="NaN token scale"),
        pytest.param({"max_prompt_tokens": 0}, "max_prompt_tokens must be at least 1", id="zero prompt cap"),
        pytest.param({"max_generated_tokens": -1}, "max_generated_tokens", id="negative generated cap"),
    ],
)
def test_bad_scaling_arguments_are_value_errors(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scale_trace(REQUESTS, **arguments)


# --- synthetic_prompt ----------------------------------------------------------------------


@pytest.mark.parametrize("n_tokens", [1, 7, 300])
def test_synthetic_prompt_has_about_n_tokens(model_path: str, n_tokens: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    assert len(tokenizer.encode(synthetic_prompt(n_tokens))) == pytest.approx(n_tokens, rel=0.1)


def test_synthetic_prompt_needs_a_positive_size() -> None:
    with pytest.raises(ValueError, match="n_tokens must be at least 1"):
        synthetic_prompt(0)


# --- the Locust replay ----------------------------------------------------------------------


@dataclass
class FakeCompletions:
    """A real HTTP server that records each POST and answers with one fixed status."""

    url: str
    status: int = 200
    received: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)


@pytest.fixture
def completions() -> Iterator[FakeCompletions]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.received.append((body, self.headers.get("Authorization")))
            payload = json.dumps({"choices": [{"index": 0, "text": "x"}]}).encode()
            self.send_response(fake.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeCompletions(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def run_locust(host: str, out: Path, run_time: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the replay headless in a child process (Locust monkey-patches with gevent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERPLANE_")}
    env.update({f"INFERPLANE_{k.upper()}": v for k, v in settings.items()})
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", host]
    command += ["-t", run_time, "--csv", str(out / "run"), "--json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=out)


def test_replay_sends_the_trace_then_ends_and_names_429_failures(
    tmp_path: Path, completions: FakeCompletions
) -> None:
    completions.status = 429
    trace = write_trace(
        tmp_path,
        HEADER + "2023-11-16 18:17:03.0,100,40\n2023-11-16 18:17:04.0,2000,10\n2023-11-16 18:17:05.0,60,3\n",
    )
    result = run_locust(
        completions.url,
        tmp_path,
        "60s",
        trace_path=str(trace),
        trace_time_scale="4",
        trace_token_scale="0.1",
        trace_max_prompt_tokens="50",
        api_key="sk-test",
    )
    # The run ends once the trace is sent (well before -t), failing because of the 429s.
    assert result.returncode == 1, result.stderr
    assert "--run-time limit reached" not in result.stderr
    bodies = [body for body, _ in completions.received]
    assert [(len(b["prompt"].split()), b["max_tokens"], b["temperature"]) for b in bodies] == [
        (10, 4, 0.7),
        (50, 1, 0.7),
        (6, 1, 0.7),
    ]
    assert {auth for _, auth in completions.received} == {"Bearer sk-test"}
    # --json prints the final stats at shutdown; the CSV files lag by up to a second.
    (stats,) = json.loads(result.stdout)
    assert (stats["name"], stats["num_requests"], stats["num_failures"]) == ("/v1/completions", 3, 3)
    assert "POST /v1/completions: 429 Too Many Requests: the service's queue is full" in result.stderr


def test_bad_setting_stops_locust_before_any_request(tmp_path: Path, completions: FakeCompletions) -> None:
    result = run_locust(completions.url, tmp_path, "30s", trace_time_scale="fast")
    assert result.returncode != 0
    assert "INFERPLANE_TRACE_TIME_SCALE='fast' is not a valid float" in result.stderr
    assert completions.received == []


def requests_seen(service: Any) -> float:
    return service.metric("inferplane_requests_total") + service.metric("inferplane_requests_cancelled_total")


@pytest.mark.slow
def test_replay_against_the_real_service(tmp_path: Path, service: Any) -> None:
    # At 4x, the trace's first 40 s (63 requests, ending in a burst of 46) arrive within
    # 10 s, and the next request only at 18 s: -t 15s sends exactly 63.
    seen_before = requests_seen(service)
    result = run_locust(service.url, tmp_path, "15s", trace_time_scale="4", trace_token_scale="0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    (stats,) = json.loads(result.stdout)
    assert stats["num_requests"] >= 1
    assert stats["num_failures"] == 0
    with (tmp_path / "run_stats.csv").open() as file:
        rows = {row["Name"]: row for row in csv.DictReader(file)}
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    # Open loop: every request was sent on time, answered or not; those still running at
    # the end were dropped by Locust and cancelled by the service.
    deadline = time.monotonic() + 10
    while requests_seen(service) - seen_before < 63 and time.monotonic() < deadline:
        time.sleep(0.2)  # the service counts a cancellation once it notices the disconnect
    assert requests_seen(service) - seen_before == 63
