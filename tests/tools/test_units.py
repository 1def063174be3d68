"""The units tool and its plain-words reader: symbols read in their case (M mega, m milli; B a
byte, b a bit), plurals of names only, no answer that is not a number or below absolute zero,
answers with the digits they have, one target unit per request."""

from __future__ import annotations

import pytest

from skillswitch.tools.builtin import BUILTIN_TOOLS, convert_units
from skillswitch.tools.phrasing import ARGUMENT_READERS, conversion


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1, "Mb", "MB"), "1 Mb = 0.125 MB"),
        ((8, "Gb", "GB"), "8 Gb = 1 GB"),
        ((1, "MB", "Mb"), "1 MB = 8 Mb"),
        ((1, "B", "b"), "1 B = 8 b"),
        ((1, "Mg", "kg"), "1 Mg = 1000 kg"),
        ((1, "Mm", "km"), "1 Mm = 1000 km"),
        ((1, "ML", "L"), "1 ML = 1000000 L"),
        ((1, "ms", "s"), "1 ms = 0.001 s"),
        ((1, "Ms", "s"), "1 Ms = 1000000 s"),
    ],
)
def test_symbols_are_read_in_their_case(args: tuple[float, str, str], expected: str) -> None:
    assert convert_units(*args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((2, "Miles", "FEET"), "2 Miles = 10560 FEET"),
        ((1, "mg", "g"), "1 mg = 0.001 g"),
        ((1, "mL", "l"), "1 mL = 0.001 l"),
        ((1, "GiB", "MiB"), "1 GiB = 1024 MiB"),
        ((1000, "Grams", "KILOGRAMS"), "1000 Grams = 1 KILOGRAMS"),
        ((1, "KG", "LB"), "1 KG = 2.20462 LB"),
        ((100, "c", "f"), "100 c = 212 f"),
        ((2, "Megabits", "kilobytes"), "2 Megabits = 250 kilobytes"),
        ((3, "°C", "°F"), "3 °C = 37.4 °F"),
    ],
)
def test_names_and_unambiguous_symbols_are_still_read_in_any_case(
    args: tuple[float, str, str], expected: str
) -> None:
    assert convert_units(*args) == expected


@pytest.mark.parametrize(
    ("unit", "choices"),
    [
        ("mb", r"MB \(megabyte\) or Mb \(megabit\)"),
        ("gb", r"GB \(gigabyte\) or Gb \(gigabit\)"),
        ("MG", r"mg \(milligram\) or Mg \(megagram\)"),
        ("MM", r"Mm \(megametre\) or mm \(millimetre\)"),
        ("MS", r"ms \(millisecond\) or Ms \(megasecond\)"),
    ],
)
def test_a_symbol_ambiguous_in_its_case_is_refused(unit: str, choices: str) -> None:
    with pytest.raises(ValueError, match=rf"unit '{unit}' is ambiguous: {choices}"):
        convert_units(1, unit, unit)


@pytest.mark.parametrize(("source", "target"), [("cs", "fs"), ("ks", "c"), ("m", "kms")])
def test_only_names_take_plurals(source: str, target: str) -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        convert_units(1, source, target)
    assert convert_units(2, "inches", "cm") == "2 inches = 5.08 cm"
    assert convert_units(1, "kelvins", "C") == "1 kelvins = -272.15 C"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1e308, "km", "mm"), r"1e\+308 km in mm is too large a number"),
        ((5e-324, "m", "km"), r"5e-324 m in km is too small a number"),
        ((float("nan"), "m", "km"), "the value nan is not a finite number"),
        ((float("inf"), "mi", "km"), "the value inf is not a finite number"),
        ((float("-inf"), "C", "F"), "the value -inf is not a finite number"),
        ((10**400, "mi", "km"), "the value is too large"),
        ((-5, "K", "C"), r"-5 K is below absolute zero \(0 K\)"),
        ((-300, "C", "F"), r"-300 C is below absolute zero \(-273.15 C\)"),
        ((-500, "F", "K"), r"-500 F is below absolute zero \(-459.67 F\)"),
    ],
)
def test_no_answer_that_is_not_a_number(args: tuple[float, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert_units(*args)


def test_absolute_zero_itself_is_still_answered() -> None:
    assert convert_units(-459.67, "F", "K") == "-459.67 F = 0 K"
    assert convert_units(-273.15, "C", "F") == "-273.15 C = -459.67 F"
    assert convert_units(-40, "F", "C") == "-40 F = -40 C"


@pytest.mark.anyio
async def test_the_tool_refuses_an_infinite_value() -> None:
    result = await BUILTIN_TOOLS["units"]().call(
        {"value": float("inf"), "from_unit": "mi", "to_unit": "km"}
    )
    assert result.is_error
    assert "the value inf is not a finite number" in result.text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1234567, "m", "km"), "1234567 m = 1234.567 km"),
        ((1234567.891234, "m", "km"), "1234567.891234 m = 1234.56789123 km"),
        ((1, "km", "mm"), "1 km = 1000000 mm"),
        ((1e20, "B", "GB"), "1e+20 B = 100000000000 GB"),
    ],
)
def test_answers_show_the_value_as_given_and_the_digits_it_has(
    args: tuple[float, str, str], expected: str
) -> None:
    assert convert_units(*args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.1, "km", "m"), "0.1 km = 100 m"),
        ((1e-7, "m", "mm"), "1e-07 m = 0.0001 mm"),
        ((36, "km/h", "m/s"), "36 km/h = 10 m/s"),
        ((26.2, "mile", "km"), "26.2 mile = 42.1648 km"),
        ((100, "F", "C"), "100 F = 37.7778 C"),
    ],
)
def test_ordinary_answers_read_as_before(args: tuple[float, str, str], expected: str) -> None:
    assert convert_units(*args) == expected


def test_c_with_a_volume_is_named_as_celsius() -> None:
    message = r"cannot convert temperature \(c\) to volume \(ml\); 'c' is Celsius here"
    with pytest.raises(ValueError, match=message):
        convert_units(1, "c", "ml")
    assert conversion("convert 1 c to ml") == (1.0, "c", "ml")
    assert convert_units(1, "cup", "ml") == "1 cup = 236.588 ml"


@pytest.mark.parametrize(
    ("request_text", "arguments", "answer"),
    [
        ("convert 1 Mb to MB", (1.0, "Mb", "MB"), "1 Mb = 0.125 MB"),
        ("Convert 8 Gb to GB", (8.0, "Gb", "GB"), "8 Gb = 1 GB"),
        ("convert 1 ms to s", (1.0, "ms", "s"), "1 ms = 0.001 s"),
        ("how many MB are in 3 gigabytes?", (3.0, "GB", "MB"), "3 GB = 3000 MB"),
        ("convert 1,234,567 m to km", (1234567.0, "m", "km"), "1234567 m = 1234.567 km"),
    ],
)
def test_the_reader_keeps_a_symbols_case(
    request_text: str, arguments: tuple[float, str, str], answer: str
) -> None:
    assert conversion(request_text) == arguments
    value, source, target = arguments
    assert ARGUMENT_READERS["units"](request_text) == {
        "value": value,
        "from_unit": source,
        "to_unit": target,
    }
    assert convert_units(*arguments) == answer


@pytest.mark.parametrize(
    "request_text",
    [
        "convert 10 kg to lbs and ounces",
        "convert 100 f to c and k",
        "convert 100 km to miles, then to feet",
        "convert 1 m to cm to mm",
        "convert 100 km to miles, feet and inches",
        "convert 10 kg to lbs & oz",
    ],
)
def test_the_reader_declines_a_second_target(request_text: str) -> None:
    assert conversion(request_text) is None
    assert ARGUMENT_READERS["units"](request_text) is None


@pytest.mark.parametrize(
    ("request_text", "arguments"),
    [
        ("convert 5 miles to km and what time is it in Tokyo", (5.0, "mile", "km")),
        ("convert 5 km to miles, please", (5.0, "km", "mile")),
        ("convert 5 km to miles in total", (5.0, "km", "mile")),
        ("What is Negative 40 Celsius in Fahrenheit?", (-40.0, "c", "f")),
    ],
)
def test_words_after_the_target_that_name_no_unit_are_still_read_past(
    request_text: str, arguments: tuple[float, str, str]
) -> None:
    assert conversion(request_text) == arguments


def test_the_reader_declines_a_number_past_a_float() -> None:
    request_text = f"convert {'5' * 400} miles to km"
    assert conversion(request_text) is None
    assert ARGUMENT_READERS["units"](request_text) is None
    assert conversion(f"convert {'5' * 20} miles to km") == (float("5" * 20), "mile", "km")


def test_speeds_per_second_are_read() -> None:
    """'per second' was dropped: 'cannot convert speed (knot) to length (m)'."""
    found = conversion("25 knots in meters per second")
    assert found == (25.0, "knot", "m/s")
    assert convert_units(*found).startswith("25 knot = 12.86")
