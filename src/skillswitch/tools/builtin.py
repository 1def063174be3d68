"""Tools that ship with skillswitch: exact arithmetic, unit conversion, the current time and
calendar arithmetic (``tools.dates``)."""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import math
import operator
import sys
import zoneinfo
from collections.abc import Callable
from fractions import Fraction

from skillswitch.tools.base import FunctionTool
from skillswitch.tools.dates import calendar
from skillswitch.tools.numbers import (
    MAX_BITS,
    NUMBER_FUNCTIONS,
    digits_of,
    is_prime,
    number_text,
    smallest_factor,
)

__all__ = ["BUILTIN_TOOLS", "calculate", "convert_units", "current_time"]

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(number: float, ndigits: int | None = None) -> float:
    """Halves away from zero, as calculators and people round (2.5 is 3, -2.5 is -3, 0.125 to
    2 places 0.13), where Python's round() goes to the even neighbour (2.5 is 2)."""
    places = 0 if ndigits is None else ndigits
    if not isinstance(places, int):
        raise ValueError(f"round to {number_text(places)} digits: give a whole number of digits")
    if abs(places) > MAX_ROUND_DIGITS:
        raise ValueError(
            f"round to {number_text(places)} digits: give at most {MAX_ROUND_DIGITS} either way"
        )
    if isinstance(number, int):
        if places >= 0:
            return number
        step: int = 10**-places
        return (1 if number >= 0 else -1) * ((abs(number) + step // 2) // step * step)
    if not math.isfinite(number):
        raise ValueError(f"cannot round {number!r}")
    context = decimal.Context(prec=MAX_ROUND_DIGITS + 400)  # room for every digit kept
    exact = decimal.Decimal(repr(number))  # the number as written: 2.675 is 2.675
    rounded = exact.quantize(
        decimal.Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP, context=context
    )
    return int(rounded) if ndigits is None else float(rounded)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": _round,
    **NUMBER_FUNCTIONS,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
# What the math functions accept, said when they are given something else ("math domain
# error" is all Python says).
_DOMAIN = {
    "sqrt": "give a number of 0 or more",
    "log": "give a number above 0 (and a base above 0, not 1)",
    "ln": "give a number above 0",
    "log10": "give a number above 0",
    "log2": "give a number above 0",
}
MAX_EXPONENT = 10_000
MAX_CHARS = 500
# Bounds on the work one expression may cause (big-integer arithmetic holds the GIL, and a tool
# call cannot be interrupted): integers of at most MAX_BITS at every step (tools.numbers), and
# round() to at most MAX_ROUND_DIGITS places (rounding an int to -n places computes 10**n).
MAX_ROUND_DIGITS = 1_000


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "17 * 23", "sqrt(2) / 3" or
    "mean(4, 8, 15), stdev(4, 8, 15)" (several, comma-separated: each result with its
    expression, "mean(4, 8, 15) = 9; stdev(4, 8, 15) = 5.56776436283002").
    Supports + - * / // % ** and sqrt, log (natural; log(x, base)), ln, log10, log2, exp, sin,
    cos, tan (radians), abs, round, pi, e; gcd, lcm,
    factorial, comb, perm; mean, median, stdev and variance (of a sample: n - 1), pstdev and
    pvariance (of a whole population: n), min, max, sum; and
    is_prime(n) on its own ("221 is not prime: it is 13 x 17")."""
    if len(expression) > MAX_CHARS:
        raise ValueError(f"expression is {len(expression)} characters; at most {MAX_CHARS}")
    try:
        body = ast.parse(expression.replace("^", "**"), mode="eval").body
        if not (isinstance(body, ast.Tuple) and body.elts):
            return _answer(body)
        return "; ".join(_labelled(part) for part in body.elts)
    except (SyntaxError, ValueError) as exc:  # ast.parse: ValueError for a null byte
        if isinstance(exc, SyntaxError) or "null bytes" in str(exc):
            raise ValueError(f"not an arithmetic expression: {_reason(exc)}") from None
        raise
    except RecursionError:
        raise ValueError("the expression is nested too deeply; simplify it") from None
    except ZeroDivisionError as exc:
        detail = str(exc)
        shown = "" if detail == "division by zero" else f" ({detail})"
        raise ValueError(f"division by zero{shown}") from None
    except OverflowError:
        raise ValueError(
            "the result is too large for a floating-point number (at most about 1.8e308)"
        ) from None
    except TypeError as exc:  # a function given the wrong number or kind of arguments
        raise ValueError(f"cannot evaluate {expression.strip()[:60]!r}: {exc}") from None


def _labelled(node: ast.expr) -> str:
    """One of several results, with the expression it answers ("mean(4, 8) = 6"): a bare list
    of numbers would leave the reader to match them up."""
    answer = _answer(node)
    if isinstance(node, ast.Call) and _function(node) == "is_prime":
        return answer  # says which number already
    return f"{ast.unparse(node)} = {answer}"


def _answer(node: ast.expr) -> str:
    """One result: a number, or a primality verdict in words."""
    if isinstance(node, ast.Call) and _function(node) == "is_prime":
        return _primality(node)
    value = _evaluate(node)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the result is not a finite number ({value!r})")
    if isinstance(value, float):
        # 15 significant digits, as calculators show: 0.1 + 0.2 is 0.3, not 0.30000000000000004
        value = float(f"{value:.15g}")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    try:
        return repr(value)
    except ValueError:  # Python converts at most sys.get_int_max_str_digits() digits to text
        raise ValueError(
            f"the result has about {digits_of(int(value))} digits, more than can be shown "
            f"({sys.get_int_max_str_digits()})"
        ) from None


def _evaluate(node: ast.expr) -> float:
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # ints stay exact: 17 ** 30 is not rounded
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, ast.Mult):
            _check_size(_bits(left) + _bits(right))
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Call) and (name := _function(node)) is not None:
        if name == "is_prime":
            raise ValueError("is_prime(n) answers yes or no, not a number: ask it on its own")
        arguments = [_evaluate(arg) for arg in node.args]
        try:
            return _FUNCTIONS[name](*arguments)
        except ValueError:
            if name not in _DOMAIN:  # the number functions say what was wrong themselves
                raise
            shown = ", ".join(number_text(a) for a in arguments)
            raise ValueError(f"{name}({shown}) has no real value; {_DOMAIN[name]}") from None
    raise ValueError(f"unsupported element {_shown(node)}; use numbers and arithmetic")


def _function(call: ast.Call) -> str | None:
    """The calculator function ``call`` calls (without keywords), or ``None``."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in _FUNCTIONS and not call.keywords:
        return func.id
    return None


def _primality(call: ast.Call) -> str:
    if len(call.args) != 1:
        raise ValueError(f"is_prime takes one number, got {len(call.args)}")
    value = _evaluate(call.args[0])
    prime, n = is_prime(value), int(value)  # is_prime refuses what is not a whole number
    if prime:
        return f"{n} is prime"
    factor = smallest_factor(n) if n > 3 else None
    if factor is None:
        return f"{n} is not prime"
    return f"{n} is not prime: it is {factor} x {n // factor}"


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {number_text(exponent)} is too large (at most {MAX_EXPONENT})")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        _check_size(_bits(base) * exponent)
    result: float | complex = operator.pow(base, exponent)
    if isinstance(result, complex):  # a fractional power of a negative number
        raise ValueError(f"({number_text(base)}) ** {number_text(exponent)} is not a real number")
    return result


def _bits(value: float) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _check_size(bits: int) -> None:
    if bits > MAX_BITS:
        digits = int(bits * math.log10(2)) + 1
        raise ValueError(
            f"an intermediate result would have about {digits} digits; the result is too large "
            f"(at most {int(MAX_BITS * math.log10(2))} digits along the way)"
        )


def _shown(node: ast.expr) -> str:
    try:
        text = ast.unparse(node)
    except RecursionError:  # a deep chain such as ~~~~...1
        return f"{type(node).__name__} (nested too deeply to show)"
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, SyntaxError) else str(exc)


def current_time(timezone: str = "UTC") -> str:
    """The current date and time in an IANA timezone, e.g. "Europe/Paris" (default UTC)."""
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {timezone!r}; use an IANA name like Europe/Paris"
        ) from None
    return dt.datetime.now(zone).isoformat(timespec="seconds")


# Symbols, in their own case: M is mega and m milli (Mm, mm; Mg, mg; ML, mL; Ms, ms), B a byte
# and b a bit (MB, Mb). Factors to each dimension's base unit (metre, kilogram, litre, second,
# metre/second, byte).
_UNITS: dict[str, tuple[str, float]] = {
    **{
        u: ("length", f)
        for u, f in {
            "m": 1,
            "km": 1000,
            "Mm": 1e6,
            "cm": 0.01,
            "mm": 0.001,
            "mi": 1609.344,
            "yd": 0.9144,
            "ft": 0.3048,
            "in": 0.0254,
            "nmi": 1852,
        }.items()
    },
    **{
        u: ("mass", f)
        for u, f in {
            "kg": 1,
            "g": 0.001,
            "mg": 1e-6,
            "Mg": 1000,
            "t": 1000,
            "lb": 0.45359237,
            "lbs": 0.45359237,
            "oz": 0.028349523125,
            "st": 6.35029318,
        }.items()
    },
    **{
        u: ("volume", f)
        for u, f in {
            "l": 1,
            "L": 1,
            "ml": 0.001,
            "mL": 0.001,
            "ML": 1e6,
            "gal": 3.785411784,
            "qt": 0.946352946,
            "pt": 0.473176473,
            "cup": 0.2365882365,
            "floz": 0.0295735295625,
        }.items()
    },
    **{
        u: ("time", f)
        for u, f in {
            "s": 1,
            "ms": 0.001,
            "Ms": 1e6,
            "min": 60,
            "h": 3600,
            "d": 86400,
            "wk": 604800,
        }.items()
    },
    **{
        u: ("speed", f)
        for u, f in {
            "m/s": 1,
            "km/h": 1 / 3.6,
            "kph": 1 / 3.6,
            "mph": 0.44704,
            "kn": 0.514444,
        }.items()
    },
    **{
        u: ("data", f)
        for u, f in {
            "B": 1,
            "b": 1 / 8,
            "kB": 1e3,
            "KB": 1e3,
            "kb": 1e3 / 8,
            "Kb": 1e3 / 8,
            "MB": 1e6,
            "Mb": 1e6 / 8,
            "GB": 1e9,
            "Gb": 1e9 / 8,
            "TB": 1e12,
            "Tb": 1e12 / 8,
            "KiB": 1024,
            "Kib": 1024 / 8,
            "MiB": 1024**2,
            "Mib": 1024**2 / 8,
            "GiB": 1024**3,
            "Gib": 1024**3 / 8,
        }.items()
    },
}
# Each scale's absolute zero and the size of its degree in kelvins.
_TEMPERATURES: dict[str, tuple[Fraction, Fraction]] = {
    "C": (Fraction("-273.15"), Fraction(1)),
    "F": (Fraction("-459.67"), Fraction(5, 9)),
    "K": (Fraction(0), Fraction(1)),
}
# Names spelled out, read in any case and (but for celsius and fahrenheit) in the plural.
_UNIT_WORDS = {
    "metre": "m", "meter": "m", "kilometre": "km", "kilometer": "km", "megametre": "Mm",
    "megameter": "Mm", "centimetre": "cm", "centimeter": "cm", "millimetre": "mm",
    "millimeter": "mm", "mile": "mi", "yard": "yd", "foot": "ft", "feet": "ft", "inch": "in",
    "nautical mile": "nmi", "kilogram": "kg", "kilo": "kg", "gram": "g", "milligram": "mg",
    "megagram": "Mg", "tonne": "t", "pound": "lb", "ounce": "oz", "stone": "st", "litre": "l",
    "liter": "l", "millilitre": "ml", "milliliter": "ml", "megalitre": "ML", "megaliter": "ML",
    "gallon": "gal", "quart": "qt", "pint": "pt", "cup": "cup", "fluid ounce": "floz",
    "second": "s", "millisecond": "ms", "megasecond": "Ms", "minute": "min", "hour": "h",
    "day": "d", "week": "wk", "metre per second": "m/s", "meter per second": "m/s",
    "metres per second": "m/s", "meters per second": "m/s", "kilometre per hour": "km/h",
    "kilometer per hour": "km/h", "kilometres per hour": "km/h", "kilometers per hour": "km/h",
    "mile per hour": "mph", "miles per hour": "mph", "knot": "kn", "byte": "B", "bit": "b",
    "kilobyte": "kB", "kilobit": "kb", "megabyte": "MB", "megabit": "Mb", "gigabyte": "GB",
    "gigabit": "Gb", "terabyte": "TB", "terabit": "Tb", "kibibyte": "KiB", "kibibit": "Kib",
    "mebibyte": "MiB", "mebibit": "Mib", "gibibyte": "GiB", "gibibit": "Gib", "celsius": "C",
    "centigrade": "C", "fahrenheit": "F", "kelvin": "K",
}  # fmt: skip
_NAMED = {symbol: word for word, symbol in reversed(_UNIT_WORDS.items())}
_MOST_DIGITS = 12  # of an answer: float noise stays below them


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume, time, speed, data size or
    temperature, e.g. value=5, from_unit="mi", to_unit="km". Symbols are read in their case
    (Mb megabit, MB megabyte, mg milligram, Mg megagram); names in any case."""
    try:
        number = float(value) + 0.0  # -0 is 0
    except OverflowError:
        raise ValueError(f"the value is too large (over {sys.float_info.max:g})") from None
    if not math.isfinite(number):
        raise ValueError(f"the value {number} is not a finite number")
    source, target = _unit(from_unit), _unit(to_unit)
    if source is None or target is None:
        unknown = from_unit if source is None else to_unit
        raise ValueError(
            f"unknown unit {unknown!r}; use e.g. km, mi, kg, lb, l, gal, h, km/h, GB, C, F, K"
        )
    dimension, other = _dimension(source), _dimension(target)
    if dimension != other:
        hint = ""
        if "volume" in {dimension, other}:  # "c" for a cup
            for name in (from_unit, to_unit):
                if name.strip().lower() == "c":
                    hint = f"; {name!r} is Celsius here — write 'cup'"
        raise ValueError(f"cannot convert {dimension} ({from_unit}) to {other} ({to_unit}){hint}")
    given, shown = Fraction(repr(number)), _number_text(number, _digits(number))
    if dimension == "temperature":
        (zero, size), (to_zero, to_size) = _TEMPERATURES[source], _TEMPERATURES[target]
        if given < zero:
            raise ValueError(
                f"{shown} {from_unit} is below absolute zero "
                f"({_number_text(float(zero), 5)} {from_unit})"
            )
        exact = (given - zero) * size / to_size + to_zero
    else:
        exact = given * Fraction(repr(_UNITS[source][1])) / Fraction(repr(_UNITS[target][1]))
    try:
        result = float(exact) + 0.0
    except OverflowError:
        raise ValueError(f"{shown} {from_unit} in {to_unit} is too large a number") from None
    if result == 0 and exact != 0:
        raise ValueError(f"{shown} {from_unit} in {to_unit} is too small a number")
    digits = min(max(6, _digits(number)), _MOST_DIGITS)
    return f"{shown} {from_unit} = {_number_text(result, digits)} {to_unit}"


def _unit(name: str) -> str | None:
    """The symbol ``name`` means: a symbol as written, a name in any case or plural, a
    symbol whose case is not ambiguous in any case ("KG", "c"); None for none."""
    text = name.strip()
    word = " ".join(text.lower().split())
    for degree in ("degrees ", "degree ", "°"):
        if word.startswith(degree) and word != degree:
            unit = _unit(text[len(degree) :])
            return unit if unit in _TEMPERATURES else None
    if text in _UNITS or text in _TEMPERATURES:
        return text
    for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
        if candidate in _UNIT_WORDS:
            return _UNIT_WORDS[candidate]
    meanings: dict[object, str] = {}
    for symbol in (*_UNITS, *_TEMPERATURES):
        if symbol.lower() == word:
            meanings.setdefault(_UNITS.get(symbol, symbol), symbol)
    if len(meanings) > 1:
        choices = " or ".join(f"{s} ({_NAMED.get(s, s)})" for s in meanings.values())
        raise ValueError(f"unit {name!r} is ambiguous: {choices}; write it in its case")
    return next(iter(meanings.values()), None)


def _dimension(symbol: str) -> str:
    return "temperature" if symbol in _TEMPERATURES else _UNITS[symbol][0]


def _digits(number: float) -> int:
    """Significant digits of the shortest text that reads back as ``number``."""
    return max(1, len(repr(abs(number)).split("e")[0].replace(".", "").strip("0")))


def _number_text(number: float, digits: int) -> str:
    """``number`` to ``digits`` significant digits, without trailing zeros, and in positional
    notation for ordinary magnitudes: 1234567 (not 1.23457e+06), 0.001, 1e+20."""
    mantissa, exponent = f"{number:.{digits - 1}e}".split("e")
    power = int(exponent)
    if not -6 <= power < 15:
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        return f"{mantissa}e{power:+03d}"
    text = f"{number:.{max(0, digits - 1 - power)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


BUILTIN_TOOLS: dict[str, Callable[[], FunctionTool]] = {
    "calculator": lambda: FunctionTool(calculate, name="calculator"),
    "calendar": lambda: FunctionTool(calendar, name="calendar"),
    "clock": lambda: FunctionTool(current_time, name="clock"),
    "units": lambda: FunctionTool(convert_units, name="units"),
}
