"""The calendar tool and its reader of date questions in plain words."""

from __future__ import annotations

import datetime as dt

import pytest

from skillswitch.tools.dates import calendar, date_question
from skillswitch.tools.phrasing import ARGUMENT_READERS

TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize(
    ("request_text", "arguments", "answer"),
    [
        (
            "How many days are there between 3 March and 18 June?",
            {"date": "2026-03-03", "until": "2026-06-18"},
            "2026-03-03 to 2026-06-18: 107 days (15 weeks and 2 days)",
        ),
        (
            "how many weeks are between March 3rd, 2025 and June 18, 2025",
            {"date": "2025-03-03", "until": "2025-06-18"},
            "2025-03-03 to 2025-06-18: 107 days (15 weeks and 2 days)",
        ),
        (  # the end comes before the start in the same year: it is next year's
            "How many days from 20 December to 5 January?",
            {"date": "2026-12-20", "until": "2027-01-05"},
            "2026-12-20 to 2027-01-05: 16 days (2 weeks and 2 days)",
        ),
        (
            "how many days until Christmas",
            {"date": "2026-11-24", "until": "2026-12-25"},
            "2026-11-24 to 2026-12-25: 31 days (4 weeks and 3 days)",
        ),
        (  # already past this year: next year's
            "how long until 1 March?",
            {"date": "2026-11-24", "until": "2027-03-01"},
            "2026-11-24 to 2027-03-01: 97 days (13 weeks and 6 days)",
        ),
        (
            "how many days since 1 January",
            {"date": "2026-01-01", "until": "2026-11-24"},
            "2026-01-01 to 2026-11-24: 327 days (46 weeks and 5 days)",
        ),
        (
            "what's the date 90 days from today",
            {"date": "2026-11-24", "add_days": 90},
            "90 days after 2026-11-24 is 2027-02-22, a Monday",
        ),
        (
            "what date was it 2 weeks before 2026-3-1",
            {"date": "2026-03-01", "add_days": -14},
            "14 days before 2026-03-01 is 2026-02-15, a Sunday",
        ),
        (
            "what day of the week was July 4 1976",
            {"date": "1976-07-04"},
            "1976-07-04 is a Sunday",
        ),
        ("what day is 29 February 2028", {"date": "2028-02-29"}, "2028-02-29 is a Tuesday"),
    ],
)
def test_date_questions_in_words(
    request_text: str, arguments: dict[str, object], answer: str
) -> None:
    assert date_question(request_text, TODAY) == arguments
    assert calendar(**arguments) == answer  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "request_text",
    [
        "What time is it in Singapore right now?",
        "is 2028 a leap year",
        "how many days between 31 February and 3 March",  # no such date
        "what day is 29 February",  # not in 2026
        "remind me in 3 days",
        "",
        # What the calendar does not count, or a number or year it would drop: not answered in
        # calendar days of the wrong span.
        "How many days between 3 March and 18 June, excluding weekends and holidays?",
        "10 business days from today",  # weekdays are counted between two dates only
        "How many school days until Christmas?",
        "How many hours until Christmas?",
        "How many months between 3 March and 18 June?",
        "how many days until 5 May next year",
        "How many days between 3 March and 18 June 2 years ago?",
    ],
)
def test_no_date_question_is_invented(request_text: str) -> None:
    assert date_question(request_text, TODAY) is None


def test_long_requests_are_declined_not_searched_for_minutes() -> None:
    """The reader's search is linear in the request (it was quadratic: 72,000 characters of
    "how many" took 9 s), and a document is not a date question."""
    repeated = "how many " * 220 + "days until 1 March"  # 1,998 characters
    assert date_question(repeated, TODAY) == {"date": "2026-11-24", "until": "2027-03-01"}
    far = "how many " + "words " * 12 + "until 1 March"  # the date 72 characters away
    assert date_question(far, TODAY) is None
    assert date_question("how many " * 20_000, TODAY) is None
    padded = "how many days until Christmas? " + "x" * 1900
    assert date_question(padded, TODAY) == {"date": "2026-11-24", "until": "2026-12-25"}


def test_the_clock_leaves_date_arithmetic_to_the_calendar() -> None:
    assert ARGUMENT_READERS["clock"]("what's the date 90 days from today") is None
    assert ARGUMENT_READERS["clock"]("what's the date today") == {"timezone": "UTC"}
    assert ARGUMENT_READERS["calendar"]("what's the date 90 days from today") is not None


@pytest.mark.parametrize(
    ("request_text", "arguments", "answer"),
    [
        (
            "How many business days between 1 March and 18 June?",
            {"date": "2026-03-01", "until": "2026-06-18", "weekdays": True},
            "2026-03-01 to 2026-06-18: 78 weekdays (Monday to Friday, counting 2026-03-01 and "
            "not 2026-06-18; public holidays not excluded)",
        ),
        (
            "How many days between 3 March 2020 and 18 June 2021, excluding weekends?",
            {"date": "2020-03-03", "until": "2021-06-18", "weekdays": True},
            "2020-03-03 to 2021-06-18: 338 weekdays (Monday to Friday, counting 2020-03-03 and "
            "not 2021-06-18; public holidays not excluded)",
        ),
        (
            "How many working days until Christmas?",
            {"date": "2026-11-24", "until": "2026-12-25", "weekdays": True},
            "2026-11-24 to 2026-12-25: 23 weekdays (Monday to Friday, counting 2026-11-24 and "
            "not 2026-12-25; public holidays not excluded)",
        ),
    ],
)
def test_weekdays_between_dates_in_words(
    request_text: str, arguments: dict[str, object], answer: str
) -> None:
    assert date_question(request_text, TODAY) == arguments
    assert calendar(**arguments) == answer  # type: ignore[arg-type]


def test_weekdays_match_a_day_by_day_count() -> None:
    start = dt.date(2023, 12, 20)
    for span in range(-30, 60):
        end = start + dt.timedelta(days=span)
        first, last = sorted((start, end))
        counted = sum(
            1 for n in range((last - first).days) if (first + dt.timedelta(n)).weekday() < 5
        )
        expected = counted if span >= 0 else -counted
        text = calendar(start.isoformat(), until=end.isoformat(), weekdays=True)
        assert text.split(": ")[1].startswith(f"{expected} weekday"), (span, text)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"date": "3 March"}, "date '3 March' is not a date; use YYYY-MM-DD"),
        ({"date": "2026-01-01", "until": "soon"}, "until 'soon' is not a date"),
        ({"date": "2026-01-01", "until": "2026-02-01", "add_days": 3}, "not both"),
        ({"date": "9999-12-31", "add_days": 1}, "outside the calendar"),
        ({"date": "2026-01-01", "add_days": 10**9}, "at most 3,000,000"),
        ({"date": "2026-01-01", "weekdays": True}, "give until as well"),
    ],
)
def test_calendar_errors_name_the_value_and_the_fix(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        calendar(**arguments)  # type: ignore[arg-type]


def test_today_is_the_current_date() -> None:
    assert calendar("today", until="today") == f"{dt.date.today()} to {dt.date.today()}: 0 days"
