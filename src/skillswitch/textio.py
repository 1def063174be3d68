"""Reading line-oriented text the way the formats define lines."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["jsonl_lines"]


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a JSON Lines text, split on ``\\n`` only.

    ``str.splitlines`` also splits on U+2028, U+0085 and other characters that JSON strings
    may contain unescaped, which would cut a record in half.

    >>> [line for _, line in jsonl_lines('{"a": "x\\u2028y"}\\r\\n{}')]
    ['{"a": "x\\u2028y"}', '{}']
    """
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")
