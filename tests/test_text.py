"""IncrementalText: token ids in, final text out, stop strings honoured."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from inference.text import IncrementalText


@pytest.fixture(scope="module")
def tokenizer(model_path: str):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(model_path)


def feed(tokenizer, text: str, stop: list[str] | None = None) -> tuple[list[str], IncrementalText]:  # type: ignore[no-untyped-def]
    assembler = IncrementalText(tokenizer, stop)
    deltas = []
    for token in tokenizer(text)["input_ids"]:
        deltas.append(assembler.add(token))
        if assembler.stopped:
            break
    deltas.append(assembler.finish())
    return deltas, assembler


@pytest.mark.parametrize(
    ("name", "text", "stop", "expected"),
    [
        ("plain text", "Hello there, friend.", None, "Hello there, friend."),
        ("multi-byte characters", "Grüße aus Köln ☕ 🚀 done", None, "Grüße aus Köln ☕ 🚀 done"),
        ("stop string cuts", "one two three four", ["three"], "one two "),
        ("earliest of several stops", "alpha beta gamma", ["gamma", "beta"], "alpha "),
        ("stop absent", "alpha beta", ["zeta"], "alpha beta"),
        ("stop across tokens", "abc###def", ["###"], "abc"),
    ],
)
def test_deltas_add_up_to_the_final_text(tokenizer, name, text, stop, expected) -> None:  # type: ignore[no-untyped-def]
    deltas, assembler = feed(tokenizer, text, stop)
    assert "".join(deltas) == expected
    assert assembler.output == expected
    assert all("\ufffd" not in d for d in deltas), "no half characters are ever released"


def test_a_stop_string_prefix_is_held_back_until_decided(tokenizer) -> None:  # type: ignore[no-untyped-def]
    deltas, assembler = feed(tokenizer, "abc END of it", ["END!"])
    assert not assembler.stopped
    assert "".join(deltas) == "abc END of it"
