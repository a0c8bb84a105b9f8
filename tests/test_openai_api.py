"""The official openai client against a real replica serving the real default model."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import ServiceProcess, start_service


@pytest.fixture
def client(service: ServiceProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_chat_completion_answers_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=24,
        temperature=0,
    )
    assert reply.choices[0].message.role == "assistant"
    assert "4" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 10
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_chat_matches_the_whole_answer(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name three colours."}]
    stream = client.chat.completions.create(
        model="m",
        messages=messages,
        max_tokens=20,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert len([p for p in pieces if p]) > 3, "tokens arrive one chunk at a time"
    whole = client.chat.completions.create(model="m", messages=messages, max_tokens=20, temperature=0)
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_text_completion_and_stop_sequence(client: openai.OpenAI) -> None:
    free = client.completions.create(model="m", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    assert free.choices[0].text.strip().startswith("5")
    stopped = client.completions.create(
        model="m", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=["7"]
    )
    assert "7" not in stopped.choices[0].text
    assert stopped.choices[0].finish_reason == "stop"
    assert free.choices[0].text.startswith(stopped.choices[0].text)


def test_a_vanishing_temperature_decodes_greedily(client: openai.OpenAI) -> None:
    # Found by the fuzzer: logits / 1.2e-38 overflowed to inf and the sampler failed (500).
    tiny = client.completions.create(model="m", prompt="1, 2, 3, 4,", max_tokens=6, temperature=1.2e-38)
    greedy = client.completions.create(model="m", prompt="1, 2, 3, 4,", max_tokens=6, temperature=0)
    assert tiny.choices[0].text == greedy.choices[0].text


def test_a_vanishing_top_p_keeps_the_likeliest_token(client: openai.OpenAI) -> None:
    # Found by the fuzzer: with top_p 5e-324 every token was dropped and sampling failed (500).
    answer = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "0"}], top_p=5e-324, max_tokens=4
    )
    assert answer.choices[0].message.content


def test_streaming_text_completion(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="m", prompt="Once upon a time", max_tokens=10, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert len("".join(c.choices[0].text for c in chunks)) > 0


def test_sampling_with_temperature_varies_and_respects_length(client: openai.OpenAI) -> None:
    answers = {
        client.completions.create(
            model="m", prompt="My favourite animal is", max_tokens=8, temperature=1.5, top_p=0.95
        )
        .choices[0]
        .text
        for _ in range(4)
    }
    assert len(answers) > 1, "sampling at temperature 1.5 should not repeat itself four times"


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["smollm2-135m-instruct"]


def test_generate_endpoint_of_the_reference_article(service: ServiceProcess) -> None:
    reply = httpx.post(
        service.url + "/generate", json={"prompt": "The capital of France is", "max_tokens": 8}, timeout=60
    )
    assert reply.status_code == 200
    body = reply.json()
    assert "Paris" in body["text"]
    assert body["generated_tokens"] <= 8 and body["prompt_tokens"] > 0


def test_health_and_ready(service: ServiceProcess) -> None:
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(service.url + "/ready").json()
    assert ready["ready"] is True and ready["draining"] is False


def test_api_keys_guard_the_api_but_not_the_probes(tmp_path) -> None:
    replica = start_service(tmp_path, api_keys="k-one,k-two", max_tokens_limit=8)
    try:
        bad = openai.OpenAI(base_url=replica.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert "API key" in str(refused.value)
        missing = httpx.post(replica.url + "/generate", json={"prompt": "hi"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        good = openai.OpenAI(base_url=replica.url + "/v1", api_key="k-two", max_retries=0)
        reply = good.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.usage.completion_tokens > 0
        assert httpx.get(replica.url + "/ready").status_code == 200
        assert httpx.get(replica.url + "/metrics").status_code == 200
        assert "k-one" not in replica.log() and "k-two" not in replica.log()
    finally:
        replica.stop()
