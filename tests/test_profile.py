"""``inferplane profile``: the fit (pure, table-driven) and the command against the real
bundled service on the default model."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.capacity import capacity_from_mapping
from autoscaler.profile import DecodeSample, PrefillSample, fit_capacity, line_fit, render_capacity
from commands.cli import app
from inference.trace import synthetic_prompt


def test_line_fit_is_least_squares() -> None:
    assert line_fit([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx((1.0, 2.0))


def test_fit_reads_prefill_rate_and_decode_step_from_the_slopes() -> None:
    prefill = [PrefillSample(100, 0.06), PrefillSample(1100, 0.16), PrefillSample(2100, 0.26)]
    decode = [DecodeSample(1, 0.011), DecodeSample(8, 0.018)]
    cap = fit_capacity(prefill, decode, max_concurrent_sequences=16, cold_start_s=30)
    assert cap.prefill_tokens_per_s == pytest.approx(10_000)
    assert (cap.decode_step_base_s, cap.decode_step_per_sequence_s) == pytest.approx((0.01, 0.001))
    assert (cap.max_concurrent_sequences, cap.cold_start_s) == (16, 30)


@pytest.mark.parametrize(
    ("prefill", "decode", "message"),
    [
        pytest.param(
            [PrefillSample(100, 0.2), PrefillSample(1000, 0.1)],
            [DecodeSample(1, 0.01), DecodeSample(4, 0.02)],
            "did not grow with the prompt",
            id="prefill-not-growing",
        ),
        pytest.param(
            [PrefillSample(100, 0.1), PrefillSample(100, 0.2)],
            [DecodeSample(1, 0.01), DecodeSample(4, 0.02)],
            "do not vary",
            id="one-prompt-size",
        ),
        pytest.param([PrefillSample(100, 0.1)], [DecodeSample(1, 0.01)], "at least two", id="one-sample"),
    ],
)
def test_fit_refuses_measurements_that_give_no_capacity(
    prefill: list[PrefillSample], decode: list[DecodeSample], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_capacity(prefill, decode, max_concurrent_sequences=8, cold_start_s=60)


def test_a_decode_step_that_shrinks_with_the_batch_is_noise_and_takes_the_mean() -> None:
    prefill = [PrefillSample(100, 0.1), PrefillSample(1000, 0.2)]
    cap = fit_capacity(
        prefill, [DecodeSample(1, 0.012), DecodeSample(4, 0.010)], max_concurrent_sequences=8, cold_start_s=60
    )
    assert (cap.decode_step_base_s, cap.decode_step_per_sequence_s) == pytest.approx((0.011, 0.0))


def test_the_written_file_reads_back_as_the_same_capacity() -> None:
    cap = fit_capacity(
        [PrefillSample(100, 0.1), PrefillSample(1000, 0.2)],
        [DecodeSample(1, 0.01), DecodeSample(4, 0.02)],
        max_concurrent_sequences=8,
        cold_start_s=60,
        kv_cache_tokens=4096,
    )
    text = render_capacity(cap, ["measured here", ""])
    assert text.startswith("# measured here\n#\n")
    assert capacity_from_mapping(yaml.safe_load(text)) == cap


def test_bad_options_exit_2_naming_them(tmp_path: Path) -> None:
    args = ["profile", "--url", "http://127.0.0.1:9", "--output", str(tmp_path / "c.yaml")]
    result = CliRunner().invoke(app, [*args, "--prompt-tokens", "64", "--batch", "99"])
    assert result.exit_code == 2
    assert "--batch 99" in result.output and "at least two sizes" in result.output


def test_an_unreachable_server_exits_2_naming_the_url(tmp_path: Path) -> None:
    from tests.local_servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["profile", "--url", url, "--output", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and url in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_a_url_with_credentials_is_never_printed_whole(tmp_path: Path) -> None:
    from tests.local_servers import free_port

    url = f"http://user:s3cret-pw@127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["profile", "--url", url, "--output", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "s3cret-pw" not in result.output
    assert url.replace("user:s3cret-pw@", "") in result.output


def test_a_server_that_answers_no_json_or_too_late_is_named_so(tmp_path: Path) -> None:
    from tests.local_servers import text_server

    with text_server(lambda: "<html>not an API</html>") as metrics:
        base = metrics.removesuffix("/metrics")
        result = CliRunner().invoke(app, ["profile", "--url", base, "--output", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "is not JSON" in result.output, result.output
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        args = ["profile", "--url", url, "--output", str(tmp_path / "c.yaml"), "--timeout", "0.5"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "no answer within --timeout 0.5 s" in result.output, result.output
    result = CliRunner().invoke(app, [*args[:-1], "-1"])
    assert result.exit_code == 2 and "--timeout must be a positive number of seconds" in result.output


@pytest.mark.slow
def test_profile_measures_the_bundled_service(tmp_path: Path, service: Any) -> None:
    out = tmp_path / "replica.capacity.yaml"
    args = ["profile", "--url", service.url, "--output", str(out), "--repeats", "2", "--decode-tokens", "12"]
    sizes = ["--prompt-tokens", "16", "--prompt-tokens", "200", "--prompt-tokens", "400"]
    result = CliRunner().invoke(app, [*args, *sizes, "--batch", "1", "--batch", "4", "--cold-start", "20"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    cap = capacity_from_mapping(yaml.safe_load(text))
    assert cap.max_concurrent_sequences == 32 and cap.cold_start_s == 20
    assert "measured by `inferplane profile`" in text
    # Ground truth from another client: the prefill time per token, timed here with the
    # OpenAI SDK from two prompt sizes (the fastest of three each: 2 shared vCPUs add
    # noise that only slows), agrees with the fitted rate within 3x.
    client = openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    model = client.models.list().data[0].id

    def ttft(tokens: int) -> float:
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": synthetic_prompt(tokens)}],
                max_tokens=1,
                stream=True,
            )
            first = None
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
            assert first is not None
            timings.append(first)
        return min(timings)

    per_token = (ttft(400) - ttft(16)) / 384
    fitted = 1 / cap.prefill_tokens_per_s
    assert fitted / 3 <= per_token <= 3 * fitted, (per_token, fitted, text)
    assert cap.decode_step_base_s > 0 and cap.decode_step_per_sequence_s >= 0
