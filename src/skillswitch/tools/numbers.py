"""Number theory and statistics for the calculator, exact where the inputs are integers and
bounded so that no expression can hold the tool for long.

``is_prime`` is deterministic: Miller-Rabin with the first 13 primes as bases has no
counterexample below 3.3e24 (Sorenson and Webster, 2015), and larger numbers are refused
rather than answered with a probable verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

__all__ = [
    "IS_PRIME_LIMIT",
    "MAX_BITS",
    "NUMBER_FUNCTIONS",
    "digits_of",
    "is_prime",
    "number_text",
    "smallest_factor",
]

IS_PRIME_LIMIT = 3_317_044_064_679_887_385_961_981
"""Miller-Rabin with bases 2..41 is exact below this bound."""
_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
_TRIAL_DIVISION = 100_000
MAX_BITS = 100_000
"""The calculator's bound on any integer, along the way or as a result (~30,000 digits): a
product of two such takes milliseconds, and big-integer arithmetic holds the GIL."""


def is_prime(value: float) -> bool:
    """Whether ``value`` is prime (a whole number from 0 below 3.3e24)."""
    n = _whole(value, "is_prime")
    if n < 0:
        raise ValueError(f"is_prime takes a number of at least 0, got {number_text(n)}")
    if n >= IS_PRIME_LIMIT:
        raise ValueError(
            f"is_prime is exact up to 3.3e24 (25 digits); {number_text(n)} is larger, so no verdict"
        )
    if n < 2:
        return False
    for p in _BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def smallest_factor(n: int) -> int | None:
    """The smallest prime factor of a composite ``n`` when one is below 100,000, else
    ``None`` (the caller then says only that ``n`` is not prime)."""
    for p in range(2, min(_TRIAL_DIVISION, math.isqrt(n)) + 1):
        if n % p == 0:
            return p
    return None


def _gcd(*values: int) -> int:
    return math.gcd(*(_whole(v, "gcd") for v in _some(values, "gcd")))


def _lcm(*values: int) -> int:
    whole = [_whole(v, "lcm") for v in _some(values, "lcm")]
    _check_bits(sum(abs(v).bit_length() for v in whole), "lcm")
    return math.lcm(*whole)


def _factorial(n: int) -> int:
    n = _natural(n, "factorial")
    _check_bits(_log2_factorial(n), f"factorial({number_text(n)})")
    return math.factorial(n)


def _comb(n: int, k: int) -> int:
    n, k = _natural(n, "comb"), _natural(k, "comb")
    if k <= n:
        _check_bits(_log2_comb(n, k), f"comb({number_text(n)}, {number_text(k)})")
    return math.comb(n, k)


def _perm(n: int, k: int) -> int:
    n, k = _natural(n, "perm"), _natural(k, "perm")
    if k <= n:  # n! / (n - k)! = comb(n, k) k!
        what = f"perm({number_text(n)}, {number_text(k)})"
        _check_bits(_log2_comb(n, k) + _log2_factorial(k), what)
    return math.perm(n, k)


def _statistic(
    name: str, compute: Callable[[list[float]], float], least: int
) -> Callable[..., float]:
    def apply(*values: float) -> float:
        if len(values) < least:
            raise ValueError(
                f"{name} needs at least {least} number{'s' if least > 1 else ''}, got {len(values)}"
            )
        for value in values:  # the statistics module fails on infinities with a TypeError
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} takes finite numbers, got {value!r}")
        return compute(list(values))

    apply.__name__ = name
    return apply


def _exact_sum(values: list[float]) -> float:
    """Integers added exactly; with any float, the correctly rounded sum (``math.fsum``)."""
    if any(isinstance(v, float) for v in values):
        return math.fsum(values)
    return sum(values)


NUMBER_FUNCTIONS: dict[str, Callable[..., float]] = {
    "is_prime": is_prime,
    "gcd": _gcd,
    "lcm": _lcm,
    "factorial": _factorial,
    "comb": _comb,
    "perm": _perm,
    "mean": _statistic("mean", statistics.mean, 1),
    "median": _statistic("median", statistics.median, 1),
    "stdev": _statistic("stdev", statistics.stdev, 2),
    "pstdev": _statistic("pstdev", statistics.pstdev, 1),
    "variance": _statistic("variance", statistics.variance, 2),
    "pvariance": _statistic("pvariance", statistics.pvariance, 1),
    "min": _statistic("min", min, 1),
    "max": _statistic("max", max, 1),
    "sum": _statistic("sum", _exact_sum, 1),
}
"""Functions the calculator adds to sqrt, log, exp, the trigonometric ones, abs and round."""


def _whole(value: float, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{name} takes whole numbers, got {value!r}")


def _natural(value: float, name: str) -> int:
    whole = _whole(value, name)
    if whole < 0:
        raise ValueError(f"{name} takes numbers of at least 0, got {number_text(whole)}")
    return whole


def _some(values: tuple[int, ...], name: str) -> tuple[int, ...]:
    if not values:
        raise ValueError(f"{name} needs at least one number")
    return values


def _log2_factorial(n: int) -> float:
    """log2(n!); infinite where n itself is past 2**53 (n! is then far past any bound)."""
    return math.lgamma(n + 1) / math.log(2) if n < 2**53 else math.inf


def _log2_comb(n: int, k: int) -> float:
    """log2(comb(n, k)) for k <= n, or a lower bound, m log2(n / m) with m = min(k, n - k),
    where n is too large for lgamma (math.log2 takes integers of any size)."""
    if n < 2**53:
        return _log2_factorial(n) - _log2_factorial(k) - _log2_factorial(n - k)
    m = min(k, n - k)
    if m == 0:
        return 0.0
    return m * (math.log2(n) - math.log2(m)) if m < 2**53 else math.inf


def _check_bits(bits: float, what: str) -> None:
    if bits <= MAX_BITS:
        return
    most = int(MAX_BITS * math.log10(2))
    if not math.isfinite(bits):
        raise ValueError(f"{what} is far too large (at most {most} digits)")
    digits = int(bits * math.log10(2)) + 1
    raise ValueError(
        f"{what} has about {digits} digits; the result is too large (at most {most} digits)"
    )


def number_text(number: float) -> str:
    """A number for a message: a huge integer by its size (Python prints at most 4,300
    digits)."""
    if isinstance(number, int) and number.bit_length() > 200:
        return f"{'-' if number < 0 else ''}(a number of about {digits_of(number)} digits)"
    return repr(number)


def digits_of(number: int) -> int:
    """About how many decimal digits ``number`` has (without converting it to text)."""
    return int(abs(number).bit_length() * math.log10(2)) + 1
