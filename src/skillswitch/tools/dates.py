"""Calendar arithmetic for the builtin ``calendar`` tool, and its reader of plain words.

``calendar("2026-03-03", until="2026-06-18")`` gives ``"2026-03-03 to 2026-06-18: 107 days
(15 weeks and 2 days)"``; ``date_question("How many days until Christmas?", today)`` gives the
tool's arguments, with the year a year-less date most plausibly means. Dates are proleptic
Gregorian, years 1 to 9999; an answer with a date before 15 October 1582 says so.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

__all__ = ["calendar", "date_question"]

MAX_ADD_DAYS = 3_000_000  # about 8,200 years either way: the whole calendar
MAX_QUESTION_CHARS = 2_000
GREGORIAN_START = dt.date(1582, 10, 15)  # the first day of the Gregorian calendar
JULIAN_NOTE = " (proleptic Gregorian calendar; the Julian calendar was in use then)"


def calendar(
    date: str, until: str = "", add_days: int = 0, weekdays: bool = False, inclusive: bool = False
) -> str:
    """Dates: the weekday of a date (YYYY-MM-DD or "today"), e.g. date="1976-07-04"; with
    until, the days from date to until (weekdays=true: only Monday to Friday, public holidays
    not excluded; inclusive=true: counting until as well); with add_days, the date that many
    days later (negative: earlier)."""
    start = _iso(date, "date")
    if until and add_days:
        raise ValueError("give until or add_days, not both")
    for flag, given in (("weekdays", weekdays), ("inclusive", inclusive)):
        if given and not until:
            raise ValueError(f"{flag} counts the days between two dates; give until as well")
    if until:
        end = _iso(until, "until")
        return _span(start, end, weekdays, inclusive) + _julian_note(start, end)
    if add_days:
        if abs(add_days) > MAX_ADD_DAYS:
            raise ValueError(f"add_days is {add_days}; at most {MAX_ADD_DAYS:,} either way")
        try:
            later = start + dt.timedelta(days=add_days)
        except OverflowError:
            raise ValueError(
                f"{start} {add_days:+d} days is outside the calendar (years 1 to 9999)"
            ) from None
        way = "after" if add_days > 0 else "before"
        return (
            f"{_count(abs(add_days), 'day')} {way} {start} is {later}, a {later:%A}"
            + _julian_note(start, later)
        )
    return f"{start} is a {start:%A}{_julian_note(start)}"


def _span(start: dt.date, end: dt.date, weekdays: bool, inclusive: bool) -> str:
    """The days (or weekdays) from ``start`` to ``end``: ``start`` counted, ``end`` counted
    only when ``inclusive``; negative when ``end`` comes first."""
    first, last = sorted((start, end))
    sign = -1 if end < start else 1
    both = " inclusive" if inclusive else ""
    if weekdays:
        count = _weekdays_between(first, last) + int(inclusive and last.weekday() < 5)
        counted = f"{first} and {last}" if inclusive else f"{first} and not {last}"
        return (
            f"{start} to {end}{both}: {_count(sign * count, 'weekday')} (Monday to Friday, "
            f"counting {counted}; public holidays not excluded)"
        )
    days = sign * ((last - first).days + int(inclusive))
    text = f"{start} to {end}{both}: {_count(days, 'day')}{_in_weeks(days)}"
    if end < start == dt.date.today():
        text += f"; {end} was {_count((start - end).days, 'day')} ago"
    return text


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}{'s' if abs(number) != 1 else ''}"


def _julian_note(*dates: dt.date) -> str:
    """A note for an answer with a date from before the Gregorian calendar began."""
    return JULIAN_NOTE if min(dates) < GREGORIAN_START else ""


def _iso(text: str, name: str) -> dt.date:
    value = text.strip().lower()
    if value == "today":
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is not a date; use YYYY-MM-DD (e.g. 2026-03-03) or today"
        ) from None


def _weekdays_between(start: dt.date, end: dt.date) -> int:
    """Monday-to-Friday days from ``start`` (counted) to ``end`` (not counted); negative when
    ``end`` comes first."""
    if end < start:
        return -_weekdays_between(end, start)
    weeks, rest = divmod((end - start).days, 7)
    first = start.weekday()
    return weeks * 5 + sum(1 for offset in range(rest) if (first + offset) % 7 < 5)


def _in_weeks(days: int) -> str:
    """The weeks of a span: "(15 weeks and 2 days)" for 107 days, "(15 weeks and 2 days
    earlier)" for -107, nothing under a week."""
    weeks, rest = divmod(abs(days), 7)
    if weeks == 0:
        return ""
    parts = [_count(weeks, "week")] + ([_count(rest, "day")] if rest else [])
    return f" ({' and '.join(parts)}{' earlier' if days < 0 else ''})"


# --- plain words -> arguments -----------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_HOLIDAYS = {
    "christmas": (12, 25),
    "christmas day": (12, 25),
    "christmas eve": (12, 24),
    "new years day": (1, 1),
    "new years eve": (12, 31),
    "halloween": (10, 31),
}
# A holiday's name, not followed by a word that makes it another day ("Christmas Eve eve",
# "Christmas week"); a word before it ("Orthodox Christmas", "the day after Christmas") stands
# where the patterns below want their date and is not read.
_HOLIDAY = (
    r"(?:christmas(?: day| eve)?|new year['’]?s (?:day|eve)|halloween)"
    r"(?!\s+(?:eve|day|week|weekend|break|season|vacation|party)\b)"
)
_YEAR = r"(?:,?\s*(\d{4}))?"
_DATE = (
    rf"(?:(\d{{4}}-\d{{1,2}}-\d{{1,2}})"  # ISO
    rf"|({_DAY})\s+(?:of\s+)?({_MONTH}){_YEAR}"  # 3 March 2026, 3rd of March
    rf"|({_MONTH})\s+({_DAY}){_YEAR}"  # March 3, 2026
    r"|(today|tomorrow|yesterday|now)"
    rf"|({_HOLIDAY}))"
)
_ASKS_SPAN = r"(?:how\s+(?:many|long)|number of|count)"
_BETWEEN = re.compile(rf"\b(?:between|from)\s+{_DATE}\s+(?:and|to|until|till)\s+{_DATE}")
# The question and its date within one clause of a few words (a bounded gap keeps the search
# linear in the request's length), with no number, other date or "the day" in between that
# would be dropped ("how many days until the day before Christmas", "... from 3 March to ...").
_GAP = (
    r"(?:(?!\b(?:until|till|before|after|from|since|between)\b|\bthe\s+(?:day|week|night)\b)"
    r"[^.?!;\d]){0,60}?"
)
_UNTIL = re.compile(rf"{_ASKS_SPAN}\b{_GAP}\b(?:until|till|to|before)\s+{_DATE}")
_SINCE = re.compile(rf"{_ASKS_SPAN}\b{_GAP}\bsince\s+{_DATE}")
_SHIFT = re.compile(
    rf"\b(\d{{1,7}})\s+(days?|weeks?)\s+(after|from|before)\s+{_DATE}"
    rf"|\b(\d{{1,7}})\s+(days?|weeks?)\s+(ago|from now|hence)\b"
)
_WEEKDAY = re.compile(
    rf"\bwhat\s+day(?:\s+of\s+the\s+week)?\s+(?:is|was|will be|falls on)\s+{_DATE}"
)
_GROUPS = 9  # capture groups in _DATE
# What the calendar does not count (business days, hours, months) or a year it does not read
# ("next year"): a question that says one of these is declined, not answered in days.
_UNREAD = re.compile(
    r"\bschool\s*days?\b|\bweekends?\b|\bexclud|\bexcept\b|\bholidays?\b|\bhours?\b"
    r"|\bminutes?\b|\bseconds?\b|\bmonths?\b|(?<!new )\byears?\b|\bleap\b"
    r"|\binclu|\bcounting\b"  # "including today", "counting the last day": not read
)
# Both dates counted (the calendar's inclusive=true).
_INCLUSIVE = re.compile(
    r",?\s*\b(?:inclusive(?:ly)?|(?:including|counting|includes)\s+both(?:\s+(?:days|dates|ends))?"
    r"|both\s+(?:days|dates|ends)\s+(?:included|inclusive|counted))\b"
)
# Only Monday to Friday between two dates (the calendar's weekdays=true).
_WEEKDAYS = re.compile(
    r"\b(?:business|working|work|week)\s*days?\b|\bweekdays\b"
    r"|,?\s*(?:excluding|not counting|without)\s+(?:the\s+)?weekends\b"
)


class _Parsed:
    """A date read from words: a whole date, or a month and day whose year is still open."""

    def __init__(self, fixed: dt.date | None, month: int = 0, day: int = 0) -> None:
        self.fixed, self.month, self.day = fixed, month, day

    def in_year(self, year: int) -> dt.date:
        if self.fixed is not None:
            return self.fixed
        return dt.date(year, self.month, self.day)  # 29 February of 2026: ValueError


def date_question(request: str, today: dt.date | None = None) -> dict[str, Any] | None:
    """The ``calendar`` tool's arguments for a date question in words, or ``None`` when the
    request asks none that can be read exactly: "how many days between 3 March and 18 June",
    "how many days until Christmas", "what date is 90 days from today", "what day of the week
    was July 4 1976". A date without a year is taken in ``today``'s year (between: in the
    other date's year, when only that one has a year), or the next (until) or previous one
    (since) when that is the only way the question makes sense."""
    if len(request) > MAX_QUESTION_CHARS:
        return None  # not a date question put in words; nothing is guessed from a document
    now = today or dt.date.today()
    text = " ".join(request.lower().split())
    try:
        return _read(text, now)
    except ValueError:  # 31 February, or 29 February in a common year: nothing to answer
        return None


def _read(text: str, now: dt.date) -> dict[str, Any] | None:
    inclusive = _INCLUSIVE.search(text) is not None
    text = _INCLUSIVE.sub(" ", text)
    weekdays = _WEEKDAYS.search(text) is not None
    text = _WEEKDAYS.sub(" days", text)
    if _UNREAD.search(text):
        return None
    found = next(
        (f for p in (_BETWEEN, _UNTIL, _SINCE, _SHIFT, _WEEKDAY) if (f := p.search(text))), None
    )
    if found is None or re.search(r"\d", text[: found.start()] + " " + text[found.end() :]):
        return None  # a number the question would drop ("... 2 years ago")
    arguments = _answer(found, now)
    if arguments is None or not (weekdays or inclusive):
        return arguments
    if "until" not in arguments:  # counted between two dates: not "10 business days from today"
        return None
    flags = {"weekdays": weekdays, "inclusive": inclusive}
    return {**arguments, **{name: True for name, given in flags.items() if given}}


def _answer(found: re.Match[str], now: dt.date) -> dict[str, Any] | None:
    if found.re is _BETWEEN:
        first = _date(found.groups()[:_GROUPS], now)
        second = _date(found.groups()[_GROUPS:], now)
        if first is None or second is None:
            return None
        start, end = _between(first, second, now)
        return {"date": start.isoformat(), "until": end.isoformat()}
    if found.re is _UNTIL:
        target = _date(found.groups(), now)
        if target is None:
            return None
        end = target.in_year(now.year)
        if target.fixed is None and end < now:
            end = target.in_year(now.year + 1)
        return {"date": now.isoformat(), "until": end.isoformat()}
    if found.re is _SINCE:
        origin = _date(found.groups(), now)
        if origin is None:
            return None
        start = origin.in_year(now.year)
        if origin.fixed is None and start > now:
            start = origin.in_year(now.year - 1)
        return {"date": start.isoformat(), "until": now.isoformat()}
    if found.re is _SHIFT:
        groups = found.groups()
        if groups[0] is not None:
            count, unit, way = groups[:3]
            origin = _date(groups[3 : 3 + _GROUPS], now)
            if origin is None:
                return None
            start = origin.in_year(now.year)
        else:
            count, unit, way = groups[3 + _GROUPS :]
            start = now
        days = int(count) * (7 if unit.startswith("week") else 1)
        sign = -1 if way in ("before", "ago") else 1
        return {"date": start.isoformat(), "add_days": sign * days}
    if found.re is _WEEKDAY:
        day = _date(found.groups(), now)
        return None if day is None else {"date": day.in_year(now.year).isoformat()}
    return None


def _between(first: _Parsed, second: _Parsed, now: dt.date) -> tuple[dt.date, dt.date]:
    """The two dates of "between ... and ...": a year-less one takes the other's year (the
    first date's when both or neither have one), and then the year that puts it in order."""
    if first.fixed is None and second.fixed is not None:
        end = second.fixed
        start = first.in_year(end.year)
        if start > end:  # 20 December to 5 January 2026: the December before
            start = first.in_year(end.year - 1)
        return start, end
    start = first.in_year(now.year)
    end = second.in_year(start.year)
    if second.fixed is None and end < start:
        end = second.in_year(start.year + 1)  # 20 December to 5 January: the next January
    return start, end


def _date(groups: tuple[str | None, ...], now: dt.date) -> _Parsed | None:
    iso, day1, month1, year1, month2, day2, year2, word, holiday = groups[:_GROUPS]
    if iso:
        return _Parsed(dt.date.fromisoformat(_padded(iso)))
    if word:
        shift = {"today": 0, "now": 0, "tomorrow": 1, "yesterday": -1}[word]
        return _Parsed(now + dt.timedelta(days=shift))
    if holiday:
        month, day = _HOLIDAYS[re.sub(r"['’]", "", holiday)]
        return _Parsed(None, month, day)
    if day1 and month1:
        return _named(day1, month1, year1)
    if day2 and month2:
        return _named(day2, month2, year2)
    return None


def _named(day: str, month: str, year: str | None) -> _Parsed:
    number = int(re.sub(r"\D", "", day))
    month_number = _MONTHS[month.rstrip(".")]
    if year:
        return _Parsed(dt.date(int(year), month_number, number))
    dt.date(2000, month_number, number)  # a day of that month in a leap year, or ValueError
    return _Parsed(None, month_number, number)


def _padded(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{year}-{int(month):02d}-{int(day):02d}"
