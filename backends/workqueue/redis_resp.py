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
        start = self._pos
        try:
            return self._read()
        except _Incomplete:
            self._pos = start
            return NOT_READY

    def _line(self) -> bytes:
        end = self._buffer.find(b"\r\n", self._pos)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buffer[self._pos:end])
        self._pos = end + 2
        return line

    def _read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            end = self._pos + size
            if end + 2 > len(self._buffer):
                raise _Incomplete
            value = self._buffer[self._pos:end].decode("utf-8", "replace")
            self._pos = end + 2
            return value
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._read() for _ in range(count)]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return self._error_type(rest.decode("utf-8", "replace"))
        raise ValueError(f"not a RESP2 reply: {line[:80]!r}")


def new_reader() -> Any:
    """A reply reader: hiredis's if installed (`pip install hiredis`), else the pure-Python one."""
    from redis.exceptions import ResponseError

    try:
        import hiredis
    except ImportError:
        return PyReplyReader(ResponseError)
    return hiredis.Reader(replyError=ResponseError, encoding="utf-8", errors="replace")
