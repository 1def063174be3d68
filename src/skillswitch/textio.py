"""Reading line-oriented text the way the formats define lines."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from skillswitch.exceptions import DatasetError

__all__ = ["jsonl_lines", "read_data_file", "split_parts"]


def read_data_file(file: Path, *, what: str, formats: str) -> str:
    """The UTF-8 text of a data file (a BOM is dropped); ``DatasetError`` names a missing file,
    a folder given instead (``formats``: what to give instead), or the first byte that is not
    UTF-8 with its line."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{what} {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise DatasetError(f"{str(file)!r} is a folder; give {formats}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{file}: not UTF-8 (byte {raw[exc.start]:#04x} on line {line}); re-save as UTF-8"
        ) from None


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a JSON Lines text, split on ``\\n`` only.

    ``str.splitlines`` also splits on U+2028, U+0085 and other characters that JSON strings
    may contain unescaped, which would cut a record in half.

    >>> [line for _, line in jsonl_lines('{"a": "x\\u2028y"}\\r\\n{}')]
    ['{"a": "x\\u2028y"}', '{}']
    """
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def split_parts(
    text: str,
    breaks: re.Pattern[str],
    *,
    min_chars: int,
    max_parts: int,
    max_text_chars: int,
    clean: Callable[[str], str] = str.strip,
) -> list[str]:
    """The parts of ``text`` between ``breaks`` (each ``clean``ed, those of at least
    ``min_chars`` kept, at most ``max_parts``); empty unless there are two or more, and for a
    text over ``max_text_chars``, which carries content (a document, code), not separate asks."""
    if len(text) > max_text_chars:
        return []
    parts = [clean(part) for part in breaks.split(text)]
    kept = [part for part in parts if len(part) >= min_chars]
    return kept[:max_parts] if len(kept) > 1 else []
