"""Validate and normalise a request's text once, at the edge of the router."""

from __future__ import annotations

import re

from skillswitch.exceptions import RequestError
from skillswitch.textio import split_parts

__all__ = ["ELLIPSIS", "prepare_text", "split_clauses"]

ELLIPSIS = " … "


def prepare_text(request: object, *, max_chars: int) -> tuple[str, bool]:
    """The text to route and whether it was shortened.

    - ``bytes`` must be UTF-8; ``str`` must not hold undecodable bytes (lone surrogates, as
      ``surrogateescape`` leaves them): both raise :class:`RequestError` naming the offset.
    - Empty or whitespace-only text raises :class:`RequestError`.
    - Text longer than ``max_chars`` keeps its first and last ``max_chars // 2`` characters,
      since instructions ("summarise this: ...", "... translate the above") sit at the ends.
    """
    if isinstance(request, (bytes, bytearray)):
        try:
            text = bytes(request).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(
                f"request is not valid UTF-8 (byte {bytes(request)[exc.start]:#04x} at offset "
                f"{exc.start}); send UTF-8 text"
            ) from None
    elif isinstance(request, str):
        text = request
    else:
        raise RequestError(f"request must be text (str), got {type(request).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"request holds bytes that are not valid UTF-8 (at character {exc.start}); "
            "send UTF-8 text"
        ) from None
    stripped = text.strip()
    if not stripped:
        raise RequestError(
            "request is empty or only whitespace; send the text you want routed"
            if not text
            else f"request is only whitespace ({len(text)} characters); send some text"
        )
    if len(stripped) <= max_chars:
        return stripped, False
    half = max_chars // 2
    return stripped[:half] + ELLIPSIS + stripped[-half:], True


# Markers that join separate asks in one request. Plain "and" is left alone on purpose: it
# joins parts of one ask far more often ("dollars and euros", "pros and cons").
_CLAUSE_BREAK = re.compile(
    r"(?:[.!?;]\s+|\s+(?:and then|and also|then|also|plus|after that)\s+|,\s*(?:and\s+)?then\s+)",
    re.IGNORECASE,
)
_MIN_CLAUSE_CHARS = 12
_MAX_CLAUSES = 4
# Longer requests usually carry content (an article, code) whose sentences are not asks.
MAX_SPLIT_CHARS = 300


def split_clauses(text: str) -> list[str]:
    """The separate asks of a short compound request (empty when there is only one).

    >>> split_clauses("translate hi to french and then convert 5 miles to km")
    ['translate hi to french', 'convert 5 miles to km']
    """
    return split_parts(
        text,
        _CLAUSE_BREAK,
        min_chars=_MIN_CLAUSE_CHARS,
        max_parts=_MAX_CLAUSES,
        max_text_chars=MAX_SPLIT_CHARS,
    )
