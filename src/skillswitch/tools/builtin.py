"""Tools that ship with skillswitch: exact arithmetic, unit conversion, the current time and
calendar arithmetic (``tools.dates``)."""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import sys
import zoneinfo
from collections.abc import Callable

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
    if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
        raise ValueError(
            f"round to {number_text(ndigits)} digits: give at most {MAX_ROUND_DIGITS} either way"
        )
    return round(number, ndigits)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": _round,
    **NUMBER_FUNCTIONS,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 10_000
MAX_CHARS = 500
# Bounds on the work one expression may cause (big-integer arithmetic holds the GIL, and a tool
# call cannot be interrupted): integers of at most MAX_BITS at every step (tools.numbers), and
# round() to at most MAX_ROUND_DIGITS places (rounding an int to -n places computes 10**n).
MAX_ROUND_DIGITS = 1_000


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "17 * 23", "sqrt(2) / 3" or
    "mean(4, 8, 15), stdev(4, 8, 15)" (several, comma-separated, give several results).
    Supports + - * / // % ** and sqrt, log, exp, sin, cos, tan, abs, round, pi, e; gcd, lcm,
    factorial, comb, perm; mean, median, stdev, pstdev, variance, min, max, sum; and
    is_prime(n) on its own ("221 is not prime: it is 13 x 17")."""
    if len(expression) > MAX_CHARS:
        raise ValueError(f"expression is {len(expression)} characters; at most {MAX_CHARS}")
    try:
        body = ast.parse(expression.replace("^", "**"), mode="eval").body
        parts = body.elts if isinstance(body, ast.Tuple) and body.elts else [body]
        return ", ".join(_answer(part) for part in parts)
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


def _answer(node: ast.expr) -> str:
    """One result: a number, or a primality verdict in words."""
    if isinstance(node, ast.Call) and _function(node) == "is_prime":
        return _primality(node)
    value = _evaluate(node)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the result is not a finite number ({value!r})")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
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
        return _FUNCTIONS[name](*(_evaluate(arg) for arg in node.args))
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


# Factors to each dimension's base unit (metre, kilogram, litre, second, metre/second, byte).
_UNITS: dict[str, tuple[str, float]] = {
    **{
        u: ("length", f)
        for u, f in {
            "m": 1,
            "meter": 1,
            "metre": 1,
            "km": 1000,
            "cm": 0.01,
            "mm": 0.001,
            "mi": 1609.344,
            "mile": 1609.344,
            "yd": 0.9144,
            "yard": 0.9144,
            "ft": 0.3048,
            "foot": 0.3048,
            "feet": 0.3048,
            "in": 0.0254,
            "inch": 0.0254,
            "nmi": 1852,
        }.items()
    },
    **{
        u: ("mass", f)
        for u, f in {
            "kg": 1,
            "kilogram": 1,
            "gram": 0.001,
            "g": 0.001,
            "mg": 1e-6,
            "t": 1000,
            "tonne": 1000,
            "lb": 0.45359237,
            "pound": 0.45359237,
            "oz": 0.028349523125,
            "ounce": 0.028349523125,
            "st": 6.35029318,
        }.items()
    },
    **{
        u: ("volume", f)
        for u, f in {
            "l": 1,
            "liter": 1,
            "litre": 1,
            "ml": 0.001,
            "gal": 3.785411784,
            "gallon": 3.785411784,
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
            "second": 1,
            "min": 60,
            "minute": 60,
            "h": 3600,
            "hour": 3600,
            "day": 86400,
            "week": 604800,
        }.items()
    },
    **{
        u: ("speed", f)
        for u, f in {
            "m/s": 1,
            "km/h": 1 / 3.6,
            "kph": 1 / 3.6,
            "mph": 0.44704,
            "knot": 0.514444,
        }.items()
    },
    **{
        u: ("data", f)
        for u, f in {
            "b": 1,
            "byte": 1,
            "kb": 1e3,
            "mb": 1e6,
            "gb": 1e9,
            "tb": 1e12,
            "kib": 1024,
            "mib": 1024**2,
            "gib": 1024**3,
        }.items()
    },
}
_TEMPERATURES = {"c", "celsius", "f", "fahrenheit", "k", "kelvin"}


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume, time, speed, data size or
    temperature, e.g. value=5, from_unit="mi", to_unit="km"."""
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TEMPERATURES and target in _TEMPERATURES:
        result = _from_kelvin(_to_kelvin(value, source[0]), target[0])
    elif source in _UNITS and target in _UNITS:
        (dimension, factor), (other, to_factor) = _UNITS[source], _UNITS[target]
        if dimension != other:
            raise ValueError(f"cannot convert {dimension} ({from_unit}) to {other} ({to_unit})")
        result = value * factor / to_factor
    else:
        unknown = from_unit if source not in _UNITS | dict.fromkeys(_TEMPERATURES) else to_unit
        raise ValueError(
            f"unknown unit {unknown!r}; use e.g. km, mi, kg, lb, l, gal, h, km/h, GB, C, F, K"
        )
    return f"{value:g} {from_unit} = {result:.6g} {to_unit}"


def _unit(name: str) -> str:
    word = name.strip().lower().removeprefix("degrees ").removeprefix("°")
    for candidate in (word, word.removesuffix("es"), word.removesuffix("s")):
        if candidate in _UNITS or candidate in _TEMPERATURES:
            return candidate
    return word


def _to_kelvin(value: float, scale: str) -> float:
    return {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[scale]


def _from_kelvin(value: float, scale: str) -> float:
    return {"c": value - 273.15, "f": (value - 273.15) * 9 / 5 + 32, "k": value}[scale]


BUILTIN_TOOLS: dict[str, Callable[[], FunctionTool]] = {
    "calculator": lambda: FunctionTool(calculate, name="calculator"),
    "calendar": lambda: FunctionTool(calendar, name="calendar"),
    "clock": lambda: FunctionTool(current_time, name="clock"),
    "units": lambda: FunctionTool(convert_units, name="units"),
}
