"""The Redis wire format (RESP2): packing commands, and a reply reader fed bytes as they arrive.

The reader is hiredis's (C) where it is installed, else `PyReplyReader`, which has the same feed/gets
interface: bytes in, whole replies out, `NOT_READY` until the next one is complete. Bulk strings come
back as str (UTF-8), error replies as `redis.exceptions.ResponseError` instances (not raised).
"""

from __future__ import annotations

from typing import Any

NOT_READY = False  # what gets() returns until a whole reply has arrived (hiredis's convention)


def pack_command(args: tuple[Any, ...] | list[Any]) -> bytes:
    """One command as a RESP array of bulk strings (str, bytes, int and float arguments)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        kind = type(arg)
        if kind is not str:
            if kind is not int and kind is not float:
                return _pack_any(args)
            arg = repr(arg)
        parts.append(f"${len(arg)}\r\n{arg}\r\n")
    text = "".join(parts)
    if not text.isascii():  # lengths above count characters; RESP counts bytes
        return _pack_any(args)
    return text.encode()


def _pack_any(args: tuple[Any, ...] | list[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis argument is str, bytes, int or float, got {type(arg).__name__}: {arg!r}")
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class PyReplyReader:
    """Parses RESP2 replies from a growing buffer (the pure-Python stand-in for hiredis.Reader)."""

    def __init__(self, error_type: type[Exception]) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._error_type = error_type

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buffer[:self._pos]
            self._pos = 0
        self._buffer += data

    def gets(self) -> Any:
        try:
            reply, self._pos = self._parse(self._buffer, self._pos)
        except _Incomplete:
            return NOT_READY
        return reply

    def _parse(self, buf: bytearray, pos: int) -> tuple[Any, int]:
        """The reply starting at `pos` and the position after it."""
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind = buf[pos]
        if kind == 36:  # $ bulk string
            size = int(buf[pos + 1:end])
            if size < 0:
                return None, end + 2
            start = end + 2
            stop = start + size
            if stop + 2 > len(buf):
                raise _Incomplete
            return buf[start:stop].decode("utf-8", "replace"), stop + 2
        if kind == 42:  # * array
            count = int(buf[pos + 1:end])
            pos = end + 2
            if count < 0:
                return None, pos
            items = []
            for _ in range(count):
                item, pos = self._parse(buf, pos)
                items.append(item)
            return items, pos
        if kind == 58:  # : integer
            return int(buf[pos + 1:end]), end + 2
        if kind == 43:  # + simple string
            return buf[pos + 1:end].decode("utf-8", "replace"), end + 2
        if kind == 45:  # - error
            return self._error_type(buf[pos + 1:end].decode("utf-8", "replace")), end + 2
        raise ValueError(f"not a RESP2 reply: {bytes(buf[pos:end][:80])!r}")


def new_reader() -> Any:
    """A reply reader: hiredis's if installed (`pip install hiredis`), else the pure-Python one."""
    from redis.exceptions import ResponseError

    try:
        import hiredis
    except ImportError:
        return PyReplyReader(ResponseError)
    return hiredis.Reader(replyError=ResponseError, encoding="utf-8", errors="replace")
