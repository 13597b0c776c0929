"""Reading a JSON array of objects one record at a time, with memory bounded by the largest record."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from regnet_explore.errors import RegNetExploreError

CHUNK = 1 << 20


def iter_json_array(path: str | os.PathLike, chunk: int = CHUNK) -> Iterator[dict]:
    """Yield the objects of a file holding one JSON array of objects, reading ``chunk`` characters at a time."""
    decoder = json.JSONDecoder()
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise RegNetExploreError(f"{path}: missing table file") from None
    with f:
        buf, pos, eof = f.read(chunk), 0, False
        started = False
        while True:
            while pos < len(buf) and (buf[pos].isspace() or (started and buf[pos] == ",")):
                pos += 1
            if pos >= len(buf) - 1 and not eof:  # keep at least one look-ahead character
                more = f.read(chunk)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if pos >= len(buf):
                raise RegNetExploreError(f"{path}: truncated JSON table (no closing ']')")
            if not started:
                if buf[pos] != "[":
                    raise RegNetExploreError(f"{path}: not a JSON table (expected a '[' array of records)")
                started, pos = True, pos + 1
                continue
            if buf[pos] == "]":
                return
            try:
                record, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if eof:
                    raise RegNetExploreError(f"{path}: invalid JSON at character {e.pos}: {e.msg}") from None
                more = f.read(chunk)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if not isinstance(record, dict):
                raise RegNetExploreError(f"{path}: table records must be JSON objects, found {type(record).__name__}")
            yield record
            pos = end
            if pos > chunk:
                buf, pos = buf[pos:], 0
