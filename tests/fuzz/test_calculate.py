"""The builtin expression tool (``calculate``, no eval) on arbitrary strings and on generated
arithmetic: a result or a ``ValueError`` that says what is wrong, never another exception, a
hang or a huge allocation (``9**9**9``, towers of powers, deep nesting, huge numbers, unicode
digits). Through ``FunctionTool`` every failure is then an error result the model can read."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skillswitch.tools.builtin import BUILTIN_TOOLS, MAX_CHARS, calculate
from tests.fuzz.profiles import fuzz_settings

pytestmark = pytest.mark.timeout(120)  # a hang fails the test instead of holding the run

MAX_SECONDS = 1.0  # per expression; the slowest accepted one takes a few milliseconds
MAX_PEAK_BYTES = 16 * 2**20

# Each of these broke calculate before its bounds: an exception other than ValueError, a
# RecursionError, or minutes of big-integer arithmetic holding the GIL.
REGRESSIONS = [
    "9**9**9",
    "(10**1000)**10000",  # a power of a huge base: ~4 GB of digits
    "round(1, -10**9)",  # round's ndigits: int rounding computes 10**-ndigits
    "*".join(["9**9999"] * 40),  # a product growing past any printable size
    "9**9999",  # more digits than Python converts to text
    "10.0**400",  # float overflow
    "exp(1000)",
    "sqrt(10**10000)",
    "10**10000 / 3",
    "1/0",
    "1 % 0",
    "0**-1",
    "sqrt()",  # wrong number of arguments
    "round(1, 2, 3)",
    "round(1.5, 1.5)",
    "(-8)**(1/3)",  # a complex number
    "sqrt((-8)**(1/3))",
    "round(1e309)",
    "1e309 - 1e309",
    "~" * 499 + "1",  # deep unsupported element: ast.unparse recursed past the limit
    "(" * 199 + "1" + ")" * 199,
    "-" * 499 + "1",
    "\x00",
    "１２ + ٣",  # unicode digits
    "ｐｉ * 2",  # NFKC: the name pi
    # The number theory and statistics functions, at and past their bounds.
    "factorial(9**9999)",  # lgamma of an int too large for a float
    "factorial(25000)",
    "comb(10**100, 5 * 10**99)",
    "comb(-9**9999, 2)",  # a message naming a number past Python's 4,300 printable digits
    "perm(10**6, 10**6)",
    "lcm(9**9999, 9**9998 + 1, 7**9999)",
    "is_prime(3317044064679887385961979)",  # just under the bound: a few milliseconds
    "is_prime(10**24 + 7) + 1",
    "mean(9**9999, 1), stdev(9**9999, 1), variance(9**9999, 3)",
    "mean(1e308, 1e308), sum(1e308, 1e308)",
    "median()",
    "stdev(1e309, 1)",  # the statistics module raised AttributeError on an infinity
    "pstdev(1e309 - 1e309)",
    "gcd(0.5, 1)",
]


def check(expression: str) -> str | None:
    """The result, or None for a refusal; fails on anything else or when over the bounds."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: str | None = calculate(expression)
    except ValueError as exc:
        message = str(exc)
        assert message, f"{expression!r}: an empty error message"
        assert "sys.set_int_max_str_digits" not in message, message  # Python's words, not ours
        result = None
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"{expression!r} took {elapsed:.2f} s"
    assert peak < MAX_PEAK_BYTES, f"{expression!r} allocated {peak / 2**20:.1f} MiB"
    if result is not None:
        assert result, f"{expression!r}: an empty result"
        assert result not in {"inf", "-inf", "nan"}, f"{expression!r} gave {result}"
        assert "j" not in result, f"{expression!r} gave a complex number {result}"
    return result


@pytest.mark.parametrize("expression", REGRESSIONS)
def test_known_hard_expressions_are_answered_or_refused(expression: str) -> None:
    check(expression)


def test_refusals_say_what_is_wrong() -> None:
    """The messages of the regressions above, in the tool's words."""
    cases = {
        "(10**1000)**10000": "too large",
        "round(1, -10**9)": "round",
        "9**9999": "digits",
        "10.0**400": "too large",
        "1/0": "division by zero",
        "sqrt()": "sqrt",
        "(-8)**(1/3)": "not a real number",
        "1e309 - 1e309": "not a finite number",
        "~" * 499 + "1": "unsupported element",
    }
    for expression, needle in cases.items():
        with pytest.raises(ValueError, match=needle):
            calculate(expression)
    with pytest.raises(ValueError, match=r"^division by zero$"):  # said once
        calculate("1/0")
    with pytest.raises(ValueError, match=r"^division by zero \(integer modulo by zero\)$"):
        calculate("1 % 0")


def test_answers_stay_exact() -> None:
    assert calculate("2**10000") == str(2**10000)
    assert calculate("(2**9999)**10 // (2**9998)**10") == "1024"  # ~30,000 digits on the way
    assert calculate("round(2.5, 3)") == "2.5"
    assert calculate("ｐｉ * 2") == "6.28318530717959"


# --- generated arithmetic ---------------------------------------------------------------------

DIGITS = st.sampled_from("0123456789")
UNICODE_DIGITS = st.characters(categories=["Nd"])
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(str),
    st.integers(min_value=0, max_value=10**400).map(str),
    st.floats(min_value=0, allow_nan=False).map(repr),
    st.text(UNICODE_DIGITS, min_size=1, max_size=5),
    st.sampled_from(["pi", "e", "1e309", "0.0", "1_000", "0x1F", "9"]),
)
OPERATORS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "^"])
FUNCTIONS = st.sampled_from(
    [
        "sqrt",
        "log",
        "exp",
        "sin",
        "cos",
        "tan",
        "abs",
        "round",
        "max",
        "min",
        "sum",
        "is_prime",
        "gcd",
        "lcm",
        "factorial",
        "comb",
        "perm",
        "mean",
        "median",
        "stdev",
        "pstdev",
        "variance",
    ]
)


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, OPERATORS, inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda x: f"({x})"),
            st.tuples(st.sampled_from(["-", "+", "~", "not "]), inner).map("".join),
            st.tuples(FUNCTIONS, st.lists(inner, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
        )

    return st.recursive(NUMBERS, extend, max_leaves=12)


# Power towers and deep nesting that plain recursion rarely reaches.
TOWERS = st.lists(NUMBERS, min_size=2, max_size=6).map("**".join)
NESTED = st.tuples(st.integers(1, 260), st.sampled_from(["(", "-(", "sqrt(", "abs("])).map(
    lambda t: t[1] * t[0] + "7" + ")" * t[0] * (t[1] != "-") + ")" * t[0] * (t[1] == "-(")
)


@given(st.text(max_size=MAX_CHARS + 20))
@example("9**9**9")
@example("")
@fuzz_settings(examples=300, fuzz_examples=20_000)
def test_any_text_is_answered_or_refused(expression: str) -> None:
    check(expression)


@given(st.one_of(_expressions(), TOWERS, NESTED))
@fuzz_settings(examples=400, fuzz_examples=30_000)
def test_generated_arithmetic_is_answered_or_refused(expression: str) -> None:
    check(expression)


@pytest.mark.anyio
async def test_the_tool_turns_every_refusal_into_an_error_result() -> None:
    tool = BUILTIN_TOOLS["calculator"]()
    for expression in REGRESSIONS:
        result = await tool.call({"expression": expression})
        assert result.is_error == (check(expression) is None), (expression, result.text)
    wrong_type = await tool.call({"expression": ["1", "+", "1"]})
    assert wrong_type.is_error
    assert "expression" in wrong_type.text
