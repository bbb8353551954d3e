"""Incremental detokenization: no broken characters, stop strings cut and held back."""

from __future__ import annotations

import pytest

from backends.engine.detokenizer import IncrementalDetokenizer, held_suffix_len


def byte_decode(ids: list[int]) -> str:
    """A toy tokenizer whose tokens are single UTF-8 bytes, so any character can be split across tokens."""
    return bytes(ids).decode("utf-8", errors="replace")


def stream(text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], IncrementalDetokenizer]:
    detok = IncrementalDetokenizer(byte_decode, stop=stop)
    pieces = [detok.add(b) for b in text.encode()]
    pieces.append(detok.flush())
    return pieces, detok


def test_multibyte_characters_are_emitted_whole():
    text = "hi 😀 ü 中文!"
    pieces, _ = stream(text)
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert "😀" in pieces  # emitted in one piece once its fourth byte arrived


def test_incomplete_character_at_the_end_is_dropped_not_emitted_broken():
    detok = IncrementalDetokenizer(byte_decode)
    pieces = [detok.add(b) for b in "ok 😀".encode()[:-2]]
    pieces.append(detok.flush())
    assert "".join(pieces) == "ok "


@pytest.mark.parametrize("text,stop,expected", [
    ("Hello world. Bye", ("world",), "Hello "),
    ("abc STOP def", ("STOP", "abc S"), ""),  # the earliest match wins
    ("one\n\ntwo", ("\n\n",), "one"),
    ("no stop here", ("zzz",), "no stop here"),
    ("ends with a partial sto", ("stop",), "ends with a partial sto"),  # released at the end
    ("emoji 😀 then END", ("END",), "emoji 😀 then "),
])
def test_stop_strings_are_cut(text, stop, expected):
    pieces, detok = stream(text, stop)
    assert "".join(pieces) == expected
    assert (detok.stop_string is not None) == (expected != text)


def test_possible_stop_start_is_held_back_until_ruled_out():
    detok = IncrementalDetokenizer(byte_decode, stop=("<end>",))
    assert [detok.add(b) for b in b"ab<e"] == ["a", "b", "", ""]
    assert detok.add(ord("x")) == "<ex"  # ruled out: released together
    assert [detok.add(b) for b in b"<end>more"] == ["", "", "", "", ""] + [""] * 4
    assert detok.stop_string == "<end>" and detok.flush() == ""


def test_held_suffix_len():
    assert held_suffix_len("abc<e", ("<end>",), 4) == 2
    assert held_suffix_len("abc", ("<end>",), 4) == 0
    assert held_suffix_len("xx\n", ("\n\n", "END"), 2) == 1


def test_real_tokenizer_streams_emoji_without_replacement_chars(tokenizer):
    text = "Party time 🎉🎉 with 👍🏽 and 🇫🇷 flags, ok?"
    ids = tokenizer.encode(text)
    detok = IncrementalDetokenizer(tokenizer.decode, context_ids=tokenizer.encode("Say:"))
    pieces = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert len(ids) > len(text.split())  # the emojis really were split across byte-level tokens
