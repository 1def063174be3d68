"""The calculator's reader: what it reads, and what it declines rather than drop part of."""

from __future__ import annotations

import pytest

from skillswitch.tools.builtin import calculate
from skillswitch.tools.phrasing import arithmetic


@pytest.mark.parametrize(
    ("request_text", "value"),
    [
        # A percentage added to or taken from a number is of that number, as calculators read
        # it (these gave 99.8, 50.1 and 100.1).
        ("what is 100 - 20%", "80"),
        ("what is 50 + 10%", "55"),
        ("what is 100 plus 10 percent", "110"),
        ("what is 5% of 200 plus 3", "13"),
        # A sign in words binds to its number ("negative 5 squared" gave -25).
        ("what is negative 5 squared", "25"),
        ("what is 12 squared minus 5", "139"),
        ("what is 12 minus 5 squared", "-13"),
        ("what is 7 minus negative 3", "10"),
        # Ordinary words around an expression.
        ("Hey, what is 2 + 2?", "4"),
        ("what does 9 * 9 equal", "81"),
        ("Can you compute 2 + 2 for me?", "4"),
        ("what is the value of 5 + 3", "8"),
        ("what is 17 times 23, please", "391"),
        # Powers in words one after the other multiply (gave 512, 256).
        ("what is 2 cubed squared", "64"),
        ("what is 2 squared cubed", "64"),
        ("what is 2 squared plus 3 cubed", "31"),
        # Digit groups beside other separators are numbers.
        ("gcd of 1,000 and 10", "10"),
        ("mean of 1,000, 2,000 and 3,000", "2000"),
        ("5 + 3 = ?", "8"),
        # Functions written with brackets (were declined, but for sqrt).
        ("what is ln(2)", "0.693147180559945"),
        ("what is log(8, 2) + 1", "4"),
        ("what is log10(1000)", "3"),
        ("round(2.675, 2) please", "2.68"),
        ("what is abs(-3) * 2", "6"),
        ("what is sqrt(16) + 9", "13"),
        # A standard deviation or variance is the sample's unless the population's is asked.
        ("the standard deviation of 2, 4, 4, 4, 5, 5, 7, 9", "2.1380899352994"),
        ("the sample standard deviation of 2, 4, 4, 4, 5, 5, 7, 9", "2.1380899352994"),
        ("the population standard deviation of 2, 4, 4, 4, 5, 5, 7, 9", "2"),
        (
            "mean and population variance of 2, 4, 4, 4, 5, 5, 7, 9",
            "mean(2, 4, 4, 4, 5, 5, 7, 9) = 5; pvariance(2, 4, 4, 4, 5, 5, 7, 9) = 4",
        ),
        ("the sample variance of 2, 4, 4, 4, 5, 5, 7, 9", "4.57142857142857"),
        # One inside another (was declined).
        ("what is sqrt(abs(-16))", "4"),
        ("round(sqrt(2), 3)", "1.414"),
        ("what is log(sqrt(64), 2)", "3"),
        ("what is 2 * (abs(-3) + sqrt(ln(exp(4))))", "10"),
    ],
)
def test_read(request_text: str, value: str) -> None:
    expression = arithmetic(request_text)
    assert expression is not None
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "request_text",
    [
        # A word the reader does not know beside the expression: it was dropped (25, 28, 8, 4.2,
        # 6, 8, 15, 15).
        "sqrt 16 + 9",
        "cbrt 27 + 1",
        "avg 3 + 5",
        "ceil 3.2 + 1",
        "negate 5 + 1",
        "max 3 + 5",
        "what is 10 + 5 in hex",
        "what is 10 + 5 in binary",
        "what is the sqrt of 16 + 9",
        # natural (as the calculator reads it) or base 10 (as calculators do)?
        "what is log(100)",
        # a function the reader does not know, or a one-argument log inside another call
        "what is foo(3) + 1",
        "what is sqrt(log(100))",
        "what is round(log(sqrt(100)), 2)",
        "what is sqrt(foo(16))",
        # a comma outside a call: one number or two?
        "what is 3 + 4, 5",
        "what is (3, 4) + 1",
        # Arithmetic around a function phrase: it was dropped (6, 6.5, 55, 15, 5, 120, 120, 1.5).
        "what is twice the mean of 4, 8",
        "what is the square root of the mean of 4, 9",
        "what is the log of the average of 10, 100",
        "what is 40 percent of the mean of 10, 20",
        "what is half the median of 3, 5, 9",
        "what is the factorial of 5 squared",
        "what is 5 factorial squared",
        "what is the mean of 1, 2 rounded",
        # A list of digit groups alone: three numbers or one? (gave 100200300)
        "what is the average of 100,200,300",
        "median of 100,200,300,400",
        # A percentage of a sum: of which base? (gave 220.1)
        "what is 200 + 10% + 10%",
    ],
)
def test_declined_rather_than_dropped(request_text: str) -> None:
    assert arithmetic(request_text) is None
