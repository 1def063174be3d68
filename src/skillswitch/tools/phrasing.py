"""Requests in plain words -> arguments of the builtin tools, without a model.

``arithmetic("What is 18% of 2,450?")`` gives ``"18/100*2450"``; ``conversion("Convert 26.2
miles to kilometres")`` gives ``(26.2, "mile", "km")``; ``place_timezone("What time is it in
Singapore?")`` gives ``"Asia/Singapore"``. Each returns ``None`` when the request does not say
enough; nothing is guessed.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

from skillswitch.tools.dates import date_question
from skillswitch.tools.places import places_named

__all__ = ["ARGUMENT_READERS", "MAX_REQUEST_CHARS", "arithmetic", "conversion", "place_timezone"]

_NUMBER = r"-?\d+(?:\.\d+)?"
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
# A sign in words in a conversion ("minus 40 degrees"); arithmetic reads its own (_signed).
_SIGN = re.compile(r"(?:(?<=^)|(?<=[\s(]))(?:negative|minus)\s+(?=\d)", re.IGNORECASE)
_WORDS = [
    (r"\bsquare root of\s+(" + _NUMBER + ")", r"sqrt(\1)"),
    (r"(" + _NUMBER + r")\s*(?:%|percent|per cent)\s+of\s+", r"\1/100*"),
    (r"(" + _NUMBER + r")\s*(?:%|percent|per cent)", r"(\1/100)"),
    # "2 to the 10th", "3 raised to the 5th power"
    (r"\b(?:raised\s+)?to\s+the\s+(\d+)(?:st|nd|rd|th)(?:\s+power)?\b", r"** \1"),
    (r"\bto the power(?: of)?\b", "**"),
    (r"\braised to(?: the power(?: of)?)?\b", "**"),
    (r"\^", "**"),
    (r"\bsquared\b", "**2"),
    (r"\bcubed\b", "**3"),
    (r"\bmultiplied by\b|\btimes\b|\bx\b|×", "*"),
    (r"\bdivided by\b|\bover\b|÷", "/"),
    (r"\bplus\b|\badded to\b", "+"),
    (r"\bminus\b|\bless\b", "-"),
    (r"\bmodulo\b|\bmod\b", "%"),
    # "100 - 20%" is 80 and "50 plus 10 percent" 55, as calculators read them: the percentage
    # is of the number before it.
    (rf"({_NUMBER})\s*([-+])\s*\((\d+(?:\.\d+)?)/100\)", r"\1 * (100 \2 \3) / 100"),
]
_VERBS = [
    (rf"\bdivide\s+({_NUMBER})\s+by\s+({_NUMBER})", r"\1 / \2"),
    (rf"\bmultiply\s+({_NUMBER})\s+(?:by|and|with)\s+({_NUMBER})", r"\1 * \2"),
    (rf"\badd\s+({_NUMBER})\s+(?:and|to)\s+({_NUMBER})", r"\1 + \2"),
    (rf"\bsubtract\s+({_NUMBER})\s+from\s+({_NUMBER})", r"\2 - \1"),
    (rf"\b(?:sum|total) of\s+({_NUMBER})\s+and\s+({_NUMBER})", r"\1 + \2"),
    (rf"\bproduct of\s+({_NUMBER})\s+and\s+({_NUMBER})", r"\1 * \2"),
]
# Functions written with brackets ("sqrt(16) + 9", "ln(2)", "log(8, 2)", "round(sqrt(2), 3)");
# a one-argument "log(100)" is declined below: natural (as the tool reads it) or base 10 (as
# calculators do)? A comma belongs inside a call ("3 + 4, 5" is two things, not one).
_CALLS = r"(?:sqrt|ln|log10|log2|log|exp|sin|cos|tan|abs|round)"
_EXPRESSION = re.compile(rf"(?:[-+*/%().,\d\s]|\b{_CALLS}\()*")
_CALL_OPENING = re.compile(rf"\b({_CALLS})\($")
# Words that change a value: left beside the expression they mean arithmetic the reader did
# not read ("the log of 100 times 2", "twice 5 plus 3"), so the request is declined.
_UNREAD_MATH = re.compile(
    r"\b(?:negative|minus|half|halves|halve|double|twice|triple|thrice|quadruple|square|"
    r"squares|cube|cubes|root|roots|log|logs|logarithm|ln|exp|exponent|exponential|power|"
    r"powers|sin|cos|tan|sine|cosine|tangent|reciprocal|inverse|factorial|average|mean|median|"
    r"percent|percentage|round|rounded|floor|ceiling|absolute|abs|dozen|dozens|hundreds?|"
    r"thousands?|millions?|billions?|trillions?|zero|one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|"
    r"twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|thirds?|quarters?|fourths?|"
    r"tenths?|hundredths?)\b"
)

# Questions that name a function of the calculator ("is 221 prime", "the mean and standard
# deviation of 4, 8, 15"): the whole expression, read only when no number follows the phrase
# (nothing of the request is dropped).
_LIST = rf"{_NUMBER}(?:\s*,\s*{_NUMBER})*(?:\s*,?\s*and\s+{_NUMBER})?"
_STATISTICS = {
    "mean": "mean",
    "average": "mean",
    "median": "median",
    # a standard deviation or variance said plainly is the sample's, as spreadsheets' STDEV
    "population standard deviation": "pstdev",
    "population variance": "pvariance",
    "sample standard deviation": "stdev",
    "sample variance": "variance",
    "standard deviation": "stdev",
    "variance": "variance",
}
_STATISTIC = "|".join(_STATISTICS)
_FUNCTION_PHRASES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]] = [
    (
        # "is 360 prime factorised" asks something else
        re.compile(rf"\b(?:is|whether)\s+({_NUMBER})\s+(?:is\s+)?(?:a\s+)?prime\b(?![\s-]*factor)"),
        lambda m: f"is_prime({m[1]})",
    ),
    (
        re.compile(
            rf"\b(?:gcd|greatest common (?:divisor|factor)|highest common factor|hcf)\s+of\s+"
            rf"({_LIST})"
        ),
        lambda m: _applied("gcd", m[1], least=2),
    ),
    (
        re.compile(rf"\b(?:lcm|(?:least|lowest) common multiple)\s+of\s+({_LIST})"),
        lambda m: _applied("lcm", m[1], least=2),
    ),
    (
        re.compile(rf"\bfactorial\s+of\s+({_NUMBER})|\b({_NUMBER})\s+factorial\b"),
        lambda m: f"factorial({m[1] or m[2]})",
    ),
    (re.compile(rf"\b({_NUMBER})\s+choose\s+({_NUMBER})\b"), lambda m: f"comb({m[1]}, {m[2]})"),
    (
        re.compile(
            rf"\b((?:{_STATISTIC})(?:\s*(?:,|and|&)\s*(?:the\s+)?(?:{_STATISTIC})){{0,4}})\s+of\s+"
            rf"(?:the\s+(?:numbers|values|data)\s*:?\s*)?({_LIST})"
        ),
        lambda m: ", ".join(
            f"{_STATISTICS[name]}({', '.join(re.findall(_NUMBER, m[2]))})"
            for name in dict.fromkeys(re.findall(_STATISTIC, m[1]))
        ),
    ),
]


# The phrases that take a list of numbers, where "100,200,300" may be three or one.
_LIST_PHRASES = {phrase for phrase, _ in _FUNCTION_PHRASES if _LIST in phrase.pattern}


def _applied(function: str, numbers: str, *, least: int = 1) -> str | None:
    found = re.findall(_NUMBER, numbers)
    return f"{function}({', '.join(found)})" if len(found) >= least else None


# Arithmetic around a function phrase ("twice the mean of 4, 8", "5 factorial squared"): the
# phrase alone would drop it.
_MORE_ARITHMETIC = re.compile(
    r"[-+*/^%×÷=]|\b(?:squared|cubed|times|plus|minus|less|divided|over|multiplied|"
    r"modulo|mod|raised|sqrt|added|subtract|percent|per cent)\b"
)
# The words that may stand right before an expression, and right after it: any other word
# there may be a function or base the reader does not know ("sqrt 16 + 9", "avg 3 + 5",
# "cbrt 27 + 1", "10 + 5 in hex"), so the request is declined rather than part of it dropped.
_BEFORE_EXPRESSION = re.compile(
    r"(?:^|\b(?:is|the|calculate|calc|compute|evaluate|eval|solve|work out|whats|what's|equals|"
    r"equal|get|me|be|does|do|make|makes|give|gives|tell|please|quick|quickly|of|to|for)|[:=,?!])$"
)
_AFTER_EXPRESSION = re.compile(
    r"^(?:$|[=?!.,:;]|(?:please|exactly|altogether|in total|thanks|thank you|now|equal|"
    r"equals|is|be|come to|comes to|make|makes|for me|again)\b)"
)
# Before "of", only these: "the value of 5 + 3" (not "sqrt of 16 + 9").
_BEFORE_OF = re.compile(r"\b(?:result|value|answer|outcome|sum|total)\s+of$")


def _function_expression(
    text: str, found: re.Match[str], build: Callable[[re.Match[str]], str | None]
) -> str | None:
    """The function a phrase names, unless more arithmetic stands around it ("twice the mean
    of 4, 8", "40 percent of the mean of 10, 20", "5 factorial squared"): the phrase alone
    would drop it."""
    outside = text[: found.start()] + " " + text[found.end() :]
    if re.search(r"\d", outside) or _UNREAD_MATH.search(outside):
        return None
    return None if _MORE_ARITHMETIC.search(outside) else build(found)


_ENDS_WITH_A_VALUE = re.compile(r"(?:[\d)%]|\b(?:squared|cubed|percent|factorial))\s*$")


def _signed(text: str) -> str:
    """ "negative 5" -> "(-5)" ("negative 5 squared" is 25); "minus 5" too where no number or
    bracket stands before it ("10 minus 5" stays a subtraction)."""

    def sign(found: re.Match[str]) -> str:
        if found[1] == "minus" and _ENDS_WITH_A_VALUE.search(text[: found.start()]):
            return found[0]
        return f"(-{found[2]})"

    return re.sub(r"(?<![\w.])(negative|minus)\s+(\d+(?:\.\d+)?)", sign, text)


# Powers in words one after the other multiply: "2 cubed squared" is (2^3)^2 = 2^6, where
# "2 **3 **2" would be 2^9.
_POWERS_IN_WORDS = re.compile(r"\b(?:squared|cubed)(?:\s+(?:squared|cubed)\b)+")
_POWER_WORDS = {"squared": 2, "cubed": 3}
# A percentage added to a result that is not a number ("200 + 10% + 10%"): which base is meant
# is unclear.
_LEFTOVER_PERCENT = re.compile(r"[-+]\s*\(\d+(?:\.\d+)?/100\)")


def _ungrouped_list(phrase: re.Pattern[str], lowered: str) -> bool:
    """Whether the list a phrase reads has digit groups and nothing else that separates its
    numbers ("100,200,300"; not "1,000 and 10" or "1,000, 2,000")."""
    raw = phrase.search(lowered)
    listed = raw[0] if raw is not None else ""
    return bool(_THOUSANDS.search(listed)) and not re.search(r",\s|\band\b|&", listed)


def _power_product(found: re.Match[str]) -> str:
    return f"to the power {math.prod(_POWER_WORDS[word] for word in found[0].split())}"


def arithmetic(request: str) -> str | None:
    """The arithmetic a request asks for, as an expression ``calculate`` accepts."""
    lowered = request.lower()
    text = _THOUSANDS.sub("", lowered)
    for phrase, build in _FUNCTION_PHRASES:
        if (found := phrase.search(text)) is not None:
            if found.re in _LIST_PHRASES and _ungrouped_list(found.re, lowered):
                return None  # "the average of 100,200,300": three numbers, or one?
            return _function_expression(text, found, build)
    text = _POWERS_IN_WORDS.sub(_power_product, _signed(text))
    for pattern, replacement in _VERBS + _WORDS:
        text = re.sub(pattern, replacement, text)
    if _LEFTOVER_PERCENT.search(text):
        return None
    runs = list(_EXPRESSION.finditer(text))
    longest = max(runs, key=lambda m: len(m.group().strip()), default=None)
    if longest is None:
        return None
    best = longest.group().strip().strip(" .,")
    if not re.search(r"\d", best) or not re.search(rf"[-+*/%]|{_CALLS}\(", best.lstrip("-(")):
        return None
    if not _calls_read(best):
        return None
    before, after = text[: longest.start()].strip(), text[longest.end() :].strip()
    outside = before + " " + after
    if re.search(r"\d", outside) or _UNREAD_MATH.search(outside):
        return None  # part of the request would be dropped: a number, or a word of arithmetic
    if not _BEFORE_EXPRESSION.search(before) or not _AFTER_EXPRESSION.search(after):
        return None  # a word beside it the reader does not know: "sqrt 16 + 9", "in hex"
    if before.endswith("of") and not _BEFORE_OF.search(before):
        return None
    return best


def _calls_read(expression: str) -> bool:
    """Whether every comma is an argument separator of a call, the brackets balance, and no
    ``log`` has one argument (ambiguous: natural or base 10?)."""
    frames: list[tuple[str | None, int]] = []  # (function or None for a group, commas)
    for index, char in enumerate(expression):
        if char == "(":
            called = _CALL_OPENING.search(expression[: index + 1])
            frames.append((called.group(1) if called else None, 0))
        elif char == ",":
            if not frames or frames[-1][0] is None:
                return False
            frames[-1] = (frames[-1][0], frames[-1][1] + 1)
        elif char == ")":
            if not frames:
                return False
            function, commas = frames.pop()
            if function == "log" and commas == 0:
                return False
    return not frames


_UNIT_NAMES = {
    "kilometre": "km", "kilometer": "km", "kilometres": "km", "kilometers": "km",
    "centimetre": "cm", "centimeter": "cm", "centimetres": "cm", "centimeters": "cm",
    "millimetre": "mm", "millimeter": "mm", "millimetres": "mm", "millimeters": "mm",
    "metres": "m", "meters": "m", "miles": "mile", "yards": "yard", "inches": "inch",
    "kilograms": "kg", "kilos": "kg", "kilo": "kg", "grams": "g", "pounds": "lb", "lbs": "lb",
    "ounces": "oz", "litres": "l", "liters": "l", "millilitres": "ml", "milliliters": "ml",
    "gallons": "gal", "cups": "cup", "seconds": "s", "minutes": "min", "hours": "h",
    "days": "day", "weeks": "week", "degrees celsius": "c", "degrees fahrenheit": "f",
    "celsius": "c", "fahrenheit": "f", "kelvin": "k", "knots": "knot",
    "kilometres per hour": "km/h", "kilometers per hour": "km/h", "miles per hour": "mph",
    "metres per second": "m/s", "meters per second": "m/s",
    "gigabytes": "GB", "megabytes": "MB", "kilobytes": "kB", "terabytes": "TB", "bytes": "B",
    "gigabits": "Gb", "megabits": "Mb", "kilobits": "kb", "terabits": "Tb", "bits": "b",
}  # fmt: skip
# Read in any case; a symbol keeps its own (Mb is a megabit, MB a megabyte; ms a millisecond).
_UNIT = r"(?:degrees\s+)?[a-z°/]+(?:\s+per\s+(?:hour|second))?"
_CONVERT = re.compile(rf"({_NUMBER})\s*({_UNIT})\s+(?:to|in|into|as)\s+({_UNIT})", re.IGNORECASE)
_HOW_MANY = re.compile(
    rf"how many\s+({_UNIT})\s+(?:are\s+)?(?:in|is|make)\s+({_NUMBER})\s*({_UNIT})", re.IGNORECASE
)
_HOW_MANY_IN_ONE = re.compile(
    rf"how many\s+({_UNIT})\s+(?:are\s+)?in\s+(?:a|an|one)\s+({_UNIT})", re.IGNORECASE
)
# After the unit asked for, another ("to lbs and ounces", "to miles, then to feet", "to cm to
# mm", "to miles, feet and inches"): the tool answers one, so the request is declined.
_ANOTHER_TARGET = re.compile(
    rf"\s*(?:[,;&]\s*|(?:and|or|plus|then|also|to|into|in|as)\s+)+({_UNIT})\b", re.IGNORECASE
)
_UNIT_WORDS = {
    *_UNIT_NAMES, *(symbol.lower() for symbol in _UNIT_NAMES.values()), "foot", "feet", "ft",
    "mi", "yd", "in", "mg", "t", "st", "qt", "pt", "pints", "quarts", "ms", "bits", "k", "c", "f",
}  # fmt: skip


def conversion(request: str) -> tuple[float, str, str] | None:
    """``(value, from_unit, to_unit)`` of a unit-conversion request."""
    text = _SIGN.sub("-", _THOUSANDS.sub("", request).replace("?", " ").strip())
    if match := _CONVERT.search(text):
        value, source, target = match.groups()
    elif match := _HOW_MANY.search(text):
        target, value, source = match.groups()
    elif match := _HOW_MANY_IN_ONE.search(text):
        target, source = match.groups()
        value = "1"
    else:
        return None
    if re.search(r"\d", text[: match.start()] + " " + text[match.end() :]):
        return None  # another number: which one to convert (or what else to do) is unclear
    if (more := _ANOTHER_TARGET.match(text, match.end())) and more[1].lower() in _UNIT_WORDS:
        return None
    number = float(value)
    if abs(number) == float("inf"):
        return None  # more digits than a float holds
    return number, _unit(source), _unit(target)


def _unit(word: str) -> str:
    """A name as the units tool reads it; a symbol as written ("Mb", "MB", "ms")."""
    word = " ".join(word.split()).removeprefix("°")
    bare = re.sub(r"^degrees\s+", "", word, flags=re.IGNORECASE)
    return _UNIT_NAMES.get(word.lower(), _UNIT_NAMES.get(bare.lower(), bare))


def place_timezone(request: str) -> str | None:
    """The IANA zone of the first place named in the request (``UTC`` when it names UTC/GMT);
    None when it names none, or a place no one zone answers for (see :mod:`.places`)."""
    named = places_named(request)
    return None if named.ambiguous or not named.zones else named.zones[0]


def _calculator_arguments(request: str) -> dict[str, Any] | None:
    expression = arithmetic(request)
    return None if expression is None else {"expression": expression}


def _units_arguments(request: str) -> dict[str, Any] | None:
    found = conversion(request)
    if found is None:
        return None
    value, source, target = found
    return {"value": value, "from_unit": source, "to_unit": target}


_ASKS_NOW = re.compile(
    r"\b(time is it|what(?:['’]?s| is) the (?:time|date)|current (?:time|date)|(?:local )?time "
    r"(?:right )?now|today['’]?s date|date today|what day is (?:it|today))\b"
)
# A time other than now ("in 3 hours", "2 hours ago", "when it is 9am in London"), or something
# that happens at a time ("sunset"): the clock tells the current time only.
_NOT_NOW = re.compile(
    r"\d|\b(?:ago|later|earlier|from now|tomorrow|yesterday|when|if|will|would|was|were|"
    r"next|last|sunset|sunrise|dawn|dusk|difference|ahead|behind|open|opens|close|closes)\b"
)


def _clock_arguments(request: str) -> dict[str, Any] | None:
    """Only for the current time or date (somewhere); other date questions are the
    calendar's ("what's the date 90 days from today")."""
    text = request.lower()
    if not _ASKS_NOW.search(text) or _NOT_NOW.search(text) or date_question(request) is not None:
        return None
    named = places_named(request)
    if named.ambiguous or len(named.zones) > 1:
        return None  # a place without one zone, or two: a difference or a conversion
    return {"timezone": named.zones[0] if named.zones else "UTC"}


MAX_REQUEST_CHARS = 2_000
"""Longer requests are not questions put in words: the readers decline them (and their
searches stay short)."""


def _short_only(
    read: Callable[[str], dict[str, Any] | None],
) -> Callable[[str], dict[str, Any] | None]:
    @functools.wraps(read)
    def reader(request: str) -> dict[str, Any] | None:
        return None if len(request) > MAX_REQUEST_CHARS else read(request)

    return reader


ARGUMENT_READERS: dict[str, Callable[[str], dict[str, Any] | None]] = {
    name: _short_only(read)
    for name, read in {
        "calculator": _calculator_arguments,
        "units": _units_arguments,
        "clock": _clock_arguments,
        "calendar": date_question,
    }.items()
}
"""The builtin tools' arguments read from a request (``clock``: the current time, in UTC when
no place is named; ``calendar``: spans, shifts and weekdays of dates, year-less dates in the
current year). Each declines requests over :data:`MAX_REQUEST_CHARS`."""
