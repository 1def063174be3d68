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
