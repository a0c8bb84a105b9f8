"""Bad input gets a 4xx with a message that says what is wrong, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ServiceProcess

CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
USER = [{"role": "user", "content": "hi"}]

# (name, path, raw body or JSON, expected status, words the message must hold)
CASES = [
    ("invalid json", CHAT, b"{bad", 400, "not valid JSON"),
    ("body is a list", CHAT, [], 400, "JSON object"),
    ("messages missing", CHAT, {"max_tokens": 4}, 400, "messages"),
    ("messages empty", CHAT, {"messages": []}, 400, "at least 1"),
    ("messages wrong type", CHAT, {"messages": "hello"}, 400, "messages"),
    ("unknown role", CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ("content wrong type", CHAT, {"messages": [{"role": "user", "content": 5}]}, 400, "content"),
    ("only blank content", CHAT, {"messages": [{"role": "user", "content": "   "}]}, 400, "no text"),
    ("image part", CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "type"),
    ("negative max_tokens", CHAT, {"messages": USER, "max_tokens": -5}, 400, "max_tokens"),
    ("zero max_tokens", CHAT, {"messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ("huge max_tokens", CHAT, {"messages": USER, "max_tokens": 10**12}, 400, "limit"),
    ("max_tokens a string", CHAT, {"messages": USER, "max_tokens": "many"}, 400, "max_tokens"),
    ("max_tokens a number in a string", CHAT, {"messages": USER, "max_tokens": "5"}, 400, "max_tokens"),
    ("max_tokens true", CHAT, {"messages": USER, "max_tokens": True}, 400, "max_tokens"),
    ("stream a string", CHAT, {"messages": USER, "stream": "yes"}, 400, "stream"),
    ("temperature too hot", CHAT, {"messages": USER, "temperature": 9}, 400, "temperature"),
    ("top_p zero", CHAT, {"messages": USER, "top_p": 0}, 400, "top_p"),
    ("n above one", CHAT, {"messages": USER, "n": 3}, 400, "'n'"),
    ("tools", CHAT, {"messages": USER, "tools": [{"type": "function"}]}, 400, "tools"),
    ("logprobs", CHAT, {"messages": USER, "logprobs": True}, 400, "logprobs"),
    ("penalty", CHAT, {"messages": USER, "presence_penalty": 1.0}, 400, "presence_penalty"),
    ("unknown field", CHAT, {"messages": USER, "wat": 1}, 400, "wat"),
    ("five stop strings", CHAT, {"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("empty stop string", CHAT, {"messages": USER, "stop": [""]}, 400, "stop"),
    ("stream_options without stream", CHAT, {"messages": USER, "stream_options": {}}, 400, "stream"),
    ("prompt over the limit", TEXT, {"prompt": "word " * 5000, "max_tokens": 1}, 400, "prompt"),
    ("two prompts", TEXT, {"prompt": ["a", "b"]}, 400, "one prompt"),
    ("empty prompt", TEXT, {"prompt": ""}, 400, "empty"),
    ("echo", TEXT, {"prompt": "a", "echo": True}, 400, "echo"),
    ("generate without prompt", "/generate", {"max_tokens": 3}, 400, "prompt"),
    ("generate negative tokens", "/generate", {"prompt": "a", "max_tokens": -1}, 400, "max_tokens"),
    # Shapes the OpenAPI fuzzer (tests/test_fuzz_openapi.py) generates, pinned as rows here:
    ("null body", CHAT, b"null", 400, "JSON object"),
    ("nul characters", TEXT, {"prompt": "\u0000\u0000", "max_tokens": 1}, 200, ""),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_clearly(
    service: ServiceProcess, path: str, body: object, status: int, words: str
) -> None:
    if isinstance(body, bytes):
        reply = httpx.post(service.url + path, content=body, headers={"content-type": "application/json"})
    else:
        reply = httpx.post(service.url + path, json=body, timeout=60)
    assert reply.status_code == status, reply.text
    if status >= 400:
        error = reply.json()["error"]
        assert words in error["message"], error
        assert error["type"] == "invalid_request_error"


def test_the_replica_is_still_healthy_after_bad_input(service: ServiceProcess) -> None:
    for body in (b"{bad", b"[]", b'{"messages": [{"role": 1}]}'):
        httpx.post(service.url + CHAT, content=body, headers={"content-type": "application/json"})
    assert httpx.get(service.url + "/ready").status_code == 200
    ok = httpx.post(service.url + "/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200


def test_unknown_paths_wrong_methods_and_wrong_content_types_answer_in_the_openai_shape(
    service: ServiceProcess,
) -> None:
    for reply, status, words in (
        (httpx.get(service.url + CHAT), 405, "Method Not Allowed: GET /v1/chat/completions"),
        (httpx.post(service.url + "/v1/nothing", json={}), 404, "Not Found: POST /v1/nothing"),
        (
            httpx.post(service.url + CHAT, data={"messages": "hi"}),  # a form, as curl -d sends
            400,
            "send the body as JSON with 'Content-Type: application/json'",
        ),
    ):
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert words in error["message"] and error["type"] == "invalid_request_error", error
