"""FunctionTool (signature -> schema, validated arguments, errors as results) and builtins."""

from __future__ import annotations

import re

import pytest

from skillswitch.tools.base import FunctionTool
from skillswitch.tools.builtin import BUILTIN_TOOLS, calculate

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 * 23", "391"),
        ("2 ^ 10", "1024"),
        ("17 ** 30", str(17**30)),
        ("sqrt(16) + abs(-2)", "6"),
        ("7 / 2", "3.5"),
        ("-(3 - 5) % 3", "2"),
        ("is_prime(2 ** 61 - 1)", "2305843009213693951 is prime"),
        ("is_prime(3215031751)", "3215031751 is not prime: it is 151 x 21291601"),  # spsp(2,3,5,7)
        ("is_prime(1)", "1 is not prime"),
        (
            "mean(4, 8, 15, 16, 23, 42), stdev(4, 8, 15, 16, 23, 42)",
            "mean(4, 8, 15, 16, 23, 42) = 18; stdev(4, 8, 15, 16, 23, 42) = 13.490737563232",
        ),
        ("2^3, is_prime(221), 1/4", "2 ** 3 = 8; 221 is not prime: it is 13 x 17; 1 / 4 = 0.25"),
        (
            "median(1, 2, 3, 4), variance(1, 2, 3, 4)",
            "median(1, 2, 3, 4) = 2.5; variance(1, 2, 3, 4) = 1.66666666666667",
        ),
        ("gcd(12, 18, 24) + lcm(4, 6)", "18"),
        ("factorial(25)", str(15511210043330985984000000)),
        (
            "comb(52, 5), perm(10, 3)",
            "comb(52, 5) = 2598960; perm(10, 3) = 720",
        ),
        ("sum(10 ** 20, 1)", "100000000000000000001"),
        (
            "min(3, -9, 2), max(3, 9, 2)",
            "min(3, -9, 2) = -9; max(3, 9, 2) = 9",
        ),
        # 15 significant digits, as calculators show (gave 0.30000000000000004)
        ("0.1 + 0.2", "0.3"),
        ("10 / 3 * 3", "10"),
        ("1 / 3", "0.333333333333333"),
        (
            "ln(2), log(8, 2), log10(1000), log2(1024)",
            "ln(2) = 0.693147180559945; log(8, 2) = 3; log10(1000) = 3; log2(1024) = 10",
        ),
        # halves away from zero (Python's round gave 2, -2, 2.67 and 1200)
        (
            "round(2.5), round(-2.5), round(2.675, 2), round(1250, -2)",
            "round(2.5) = 3; round(-2.5) = -3; round(2.675, 2) = 2.68; round(1250, -2) = 1300",
        ),
        (
            "round(0.125, 2), round(7, 2), round(-1250, -2)",
            "round(0.125, 2) = 0.13; round(7, 2) = 7; round(-1250, -2) = -1300",
        ),
    ],
)
def test_calculator(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "unsupported element"),
        ("2 ** 100000", "exponent"),
        ("1 +", "not an arithmetic expression"),
        ("x" * 600, "at most 500"),
        ("is_prime(7) + 1", "answers yes or no"),
        ("is_prime(10 ** 30)", "exact up to 3.3e24"),
        ("is_prime(2.5)", "whole numbers, got 2.5"),
        ("is_prime(-3)", "at least 0, got -3"),
        ("factorial(100000)", "too large"),
        ("comb(10 ** 9, 10 ** 8)", "too large"),
        ("stdev(1)", "at least 2 numbers, got 1"),
        ("gcd(2.5, 5)", "whole numbers"),
        ("mean()", "at least 1 number, got 0"),
        # Python says only "math domain error"
        ("sqrt(-1)", r"sqrt\(-1\) has no real value; give a number of 0 or more"),
        ("log(0)", r"log\(0\) has no real value; give a number above 0"),
        ("ln(-2.5)", r"ln\(-2.5\) has no real value"),
        ("round(2.5, 1.5)", "give a whole number of digits"),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculate(expression)


async def test_function_tool_schema_validation_and_errors() -> None:
    async def area(width: float, height: float = 1.0) -> dict[str, float]:
        """Area of a rectangle."""
        return {"area": width * height}

    tool = FunctionTool(area)
    assert tool.spec.name == "area"
    assert tool.spec.description == "Area of a rectangle."
    assert tool.spec.input_schema["required"] == ["width"]
    assert (await tool.call({"width": 3, "height": 2})).text == '{"area": 6.0}'
    bad = await tool.call({"width": "wide"})
    assert bad.is_error
    assert "width" in bad.text
    extra = await tool.call({"width": 1, "depth": 2})
    assert extra.is_error
    assert "depth" in extra.text


async def test_builtin_tools_report_failures_as_results() -> None:
    calculator = BUILTIN_TOOLS["calculator"]()
    assert (await calculator.call({"expression": "6 * 7"})).text == "42"
    failed = await calculator.call({"expression": "open('x')"})
    assert failed.is_error
    assert "calculator failed: ValueError: unsupported element" in failed.text
    clock = BUILTIN_TOOLS["clock"]()
    now = await clock.call({"timezone": "Europe/Paris"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", now.text)
    assert (await clock.call({"timezone": "Mars/Olympus"})).is_error


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((5, "mi", "km"), "5 mi = 8.04672 km"),
        ((100, "F", "C"), "100 F = 37.7778 C"),
        ((3, "ounces", "grams"), "3 ounces = 85.0486 grams"),
        ((20, "degrees celsius", "fahrenheit"), "20 degrees celsius = 68 fahrenheit"),
        ((60, "mph", "km/h"), "60 mph = 96.5606 km/h"),
    ],
)
def test_unit_conversion(args: tuple[float, str, str], expected: str) -> None:
    from skillswitch.tools.builtin import convert_units

    assert convert_units(*args) == expected


def test_unit_conversion_errors_name_the_unit() -> None:
    from skillswitch.tools.builtin import convert_units

    with pytest.raises(ValueError, match=r"cannot convert mass \(kg\) to length \(km\)"):
        convert_units(1, "kg", "km")
    with pytest.raises(ValueError, match="unknown unit 'parsec'"):
        convert_units(1, "parsec", "m")
