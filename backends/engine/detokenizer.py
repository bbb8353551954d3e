"""Incremental detokenization: output tokens in, text that is safe to stream out.

Two things keep streamed text correct. A token may end partway through a UTF-8 character (an emoji is often
split over several byte-level tokens); such text decodes to U+FFFD, so nothing is emitted until the character is
complete. And a stop string may arrive over several tokens, so any tail of the text that could be the start of
a stop string is held back until it is either ruled out or completed; a completed stop string ends the text
just before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT_CHAR = "\ufffd"
_NUM_CONTEXT_TOKENS = 5  # prompt tokens decoded with the output, so a leading space is not lost


class IncrementalDetokenizer:
    def __init__(
        self, decode: Callable[[list[int]], str], *, stop: Sequence[str] = (), context_ids: Sequence[int] = (),
    ) -> None:
        """decode turns ids into text (special tokens skipped); context_ids are the prompt's last tokens."""
        self._decode = decode
        self._stop = tuple(stop)
        self._max_hold_chars = max((len(s) for s in self._stop), default=1) - 1
        self._ids: list[int] = list(context_ids)[-_NUM_CONTEXT_TOKENS:]
        self._prefix_offset = 0  # ids[prefix_offset:read_offset] were already turned into text
        self._read_offset = len(self._ids)
        self._held = ""  # decoded text not yet emitted: a possible stop-string start
        self.stop_string: str | None = None  # the stop string that ended the text, once one has

    def add(self, token_id: int) -> str:
        """Take one output token; return the text that may be emitted now ("" while waiting)."""
        if self.stop_string is not None:
            return ""
        self._ids.append(token_id)
        return self._release(self._held + self._new_text(final=False))

    def flush(self) -> str:
        """At the end of generation: the held-back text, and what is left of an incomplete character dropped."""
        if self.stop_string is not None:
            return ""
        text = self._held + self._new_text(final=True)
        self._held = ""
        return text

    def _new_text(self, *, final: bool) -> str:
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset:])
        if final:
            full_text = full_text.rstrip(REPLACEMENT_CHAR)
        elif full_text.endswith(REPLACEMENT_CHAR):
            return ""  # the last token ends inside a character: wait for the rest of it
        if len(full_text) <= len(prefix_text):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return full_text[len(prefix_text):]

    def _release(self, text: str) -> str:
        self._held = ""
        if not self._stop:
            return text
        found = [(index, s) for s in self._stop if (index := text.find(s)) >= 0]
        if found:
            index, self.stop_string = min(found)
            return text[:index]
        num_held = held_suffix_len(text, self._stop, self._max_hold_chars)
        self._held = text[len(text) - num_held:] if num_held else ""
        return text[: len(text) - num_held]


def held_suffix_len(text: str, stop: Sequence[str], max_hold_chars: int) -> int:
    """Length of the longest tail of text that is a proper prefix of some stop string (0 if none)."""
    for length in range(min(len(text), max_hold_chars), 0, -1):
        tail = text[-length:]
        if any(s.startswith(tail) for s in stop):
            return length
    return 0
