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
        (  # the eve, not the day (it was read as 25 December)
            "how many days until Christmas Eve",
            {"date": "2026-11-24", "until": "2026-12-24"},
            "2026-11-24 to 2026-12-24: 30 days (4 weeks and 2 days)",
        ),
        (
            "what day of the week is Christmas Eve",
            {"date": "2026-12-24"},
            "2026-12-24 is a Thursday",
        ),
        (
            "How many days until New Year's Eve?",
            {"date": "2026-11-24", "until": "2026-12-31"},
            "2026-11-24 to 2026-12-31: 37 days (5 weeks and 2 days)",
        ),
        (  # only the second date has a year: the first takes it (it took 2026: 759 days)
            "how many days between 1 Feb and 1 Mar 2028",
            {"date": "2028-02-01", "until": "2028-03-01"},
            "2028-02-01 to 2028-03-01: 29 days (4 weeks and 1 day)",
        ),
        (  # it gave -16 days
            "how many days between 5 January and 20 December 2025",
            {"date": "2025-01-05", "until": "2025-12-20"},
            "2025-01-05 to 2025-12-20: 349 days (49 weeks and 6 days)",
        ),
        (  # the first would come after the second in that year: the year before
            "how many days between 20 December and 5 January 2026",
            {"date": "2025-12-20", "until": "2026-01-05"},
            "2025-12-20 to 2026-01-05: 16 days (2 weeks and 2 days)",
        ),
        (  # both days counted (it was silently dropped: a day short)
            "How many days between 3 March and 18 June inclusive?",
            {"date": "2026-03-03", "until": "2026-06-18", "inclusive": True},
            "2026-03-03 to 2026-06-18 inclusive: 108 days (15 weeks and 3 days)",
        ),
        (
            "how many days from 20 December to 5 January, including both days",
            {"date": "2026-12-20", "until": "2027-01-05", "inclusive": True},
            "2026-12-20 to 2027-01-05 inclusive: 17 days (2 weeks and 3 days)",
        ),
        (
            "how many days between 1 March and 1 April counting both",
            {"date": "2026-03-01", "until": "2026-04-01", "inclusive": True},
            "2026-03-01 to 2026-04-01 inclusive: 32 days (4 weeks and 4 days)",
        ),
        (
            "How many business days between 1 March and 18 June, inclusive?",
            {"date": "2026-03-01", "until": "2026-06-18", "weekdays": True, "inclusive": True},
            "2026-03-01 to 2026-06-18 inclusive: 79 weekdays (Monday to Friday, counting "
            "2026-03-01 and 2026-06-18; public holidays not excluded)",
        ),
        (  # one day, not "1 days"
            "what's the date 1 day after 2024-02-28",
            {"date": "2024-02-28", "add_days": 1},
            "1 day after 2024-02-28 is 2024-02-29, a Thursday",
        ),
        (  # Hastings was fought on a Saturday, 14 October 1066 in the Julian calendar
            "what day of the week was 14 October 1066",
            {"date": "1066-10-14"},
            "1066-10-14 is a Sunday (proleptic Gregorian calendar; the Julian calendar was in "
            "use then)",
        ),
        # Weekdays between two dates (the calendar's weekdays=true).
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
        # A holiday with a word that makes it another day: not answered for the holiday.
        "how many days until the day after Christmas",
        "how many days until the day before Christmas",
        "how many days to the day before Christmas",
        "how many days until Orthodox Christmas",
        "what day of the week is Orthodox Christmas",
        "how many days until Christmas Eve eve",
        "what day of the week is Christmas Eve eve",
        "how many days until Christmas week",
        "how many days from the day after Christmas to New Year's Eve",
        "how many days from the 3rd of March to Christmas",  # the first date is not read
        # Counting the ends in a way the calendar does not say: declined, not a day off.
        "how many days until Christmas including today",
        "what date is 10 days from today inclusive",  # inclusive counts between two dates
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


def test_a_negative_span_says_the_weeks_are_earlier() -> None:
    assert calendar("2026-06-18", until="2026-03-03") == (
        "2026-06-18 to 2026-03-03: -107 days (15 weeks and 2 days earlier)"
    )
    assert calendar("2026-06-18", until="2026-03-03", inclusive=True) == (
        "2026-06-18 to 2026-03-03 inclusive: -108 days (15 weeks and 3 days earlier)"
    )
    assert calendar("2026-03-16", until="2026-03-02", weekdays=True, inclusive=True) == (
        "2026-03-16 to 2026-03-02 inclusive: -11 weekdays (Monday to Friday, counting "
        "2026-03-02 and 2026-03-16; public holidays not excluded)"
    )


def test_days_until_a_past_date_say_it_is_past() -> None:
    arguments = date_question("how many days until 25 December 2025", TODAY)
    assert arguments == {"date": "2026-11-24", "until": "2025-12-25"}
    today = dt.date.today()
    past = today - dt.timedelta(days=334)
    assert calendar(today.isoformat(), until=past.isoformat()) == (
        f"{today} to {past}: -334 days (47 weeks and 5 days earlier); {past} was 334 days ago"
    )
    yesterday = today - dt.timedelta(days=1)
    assert calendar("today", until=yesterday.isoformat()) == (
        f"{today} to {yesterday}: -1 day; {yesterday} was 1 day ago"
    )


@pytest.mark.parametrize(
    ("arguments", "answer"),
    [
        (
            {"date": "1500-01-01", "until": "1500-04-11"},
            "1500-01-01 to 1500-04-11: 100 days (14 weeks and 2 days) (proleptic Gregorian "
            "calendar; the Julian calendar was in use then)",
        ),
        (
            {"date": "1582-10-25", "add_days": -20},
            "20 days before 1582-10-25 is 1582-10-05, a Tuesday (proleptic Gregorian calendar; "
            "the Julian calendar was in use then)",
        ),
        ({"date": "1582-10-15"}, "1582-10-15 is a Friday"),  # the Gregorian calendar's first day
    ],
)
def test_dates_before_the_gregorian_calendar_are_noted(
    arguments: dict[str, object], answer: str
) -> None:
    assert calendar(**arguments) == answer  # type: ignore[arg-type]


def test_inclusive_counts_both_days_and_needs_two_dates() -> None:
    assert calendar("2026-01-01", until="2026-01-01", inclusive=True) == (
        "2026-01-01 to 2026-01-01 inclusive: 1 day"
    )
    with pytest.raises(ValueError, match="inclusive counts the days between two dates"):
        calendar("2026-01-01", inclusive=True)


def test_today_is_the_current_date() -> None:
    assert calendar("today", until="today") == f"{dt.date.today()} to {dt.date.today()}: 0 days"
