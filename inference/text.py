"""Turn a stream of token ids into a stream of text, honouring stop strings.

Pure: no I/O, no clock. Text is released only when it is final, so a client never sees
half of a multi-byte character or the start of a stop string that is then cut off.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IncrementalText"]

_INCOMPLETE = "\ufffd"  # what the tokenizer shows for an unfinished UTF-8 sequence


class IncrementalText:
    """Feed token ids with ``add``; each call returns the newly final text."""

    def __init__(self, tokenizer: Any, stop: list[str] | None = None) -> None:
        self._tokenizer = tokenizer
        self._stop = stop or []
        self._holdback = max((len(s) for s in self._stop), default=1) - 1
        self._ids: list[int] = []
        self._released = 0
        self._output = ""
        self.stopped = False

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode()
        cut = self._cut_at_stop(text)
        if cut is not None:
            self.stopped = True
            return self._release(text[:cut])
        if text.endswith(_INCOMPLETE):
            return ""
        return self._release(text[: len(text) - self._holdback])

    def finish(self) -> str:
        """Release whatever is held back, at the end of generation."""
        if self.stopped:
            return ""
        text = self._decode()
        cut = self._cut_at_stop(text)
        return self._release(text if cut is None else text[:cut])

    @property
    def output(self) -> str:
        """All text released so far: after ``finish``, the whole answer."""
        return self._output

    def _decode(self) -> str:
        return self._tokenizer.decode(self._ids, skip_special_tokens=True)

    def _cut_at_stop(self, text: str) -> int | None:
        start = max(0, self._released - self._holdback)
        hits = [i for s in self._stop if (i := text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def _release(self, upto: str) -> str:
        delta = upto[self._released :]
        self._released = max(self._released, len(upto))
        self._output += delta
        return delta
