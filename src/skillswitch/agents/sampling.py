"""Sampling settings: each expert's own (its config), and what a caller asks for with a request.

A caller's settings (OpenAI's ``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``
and ``response_format``, the last as vLLM's sampling parameters carry structured output) apply
to every model call that answers its request: the experts, and the aggregator that synthesises
their answers. A setting the caller leaves out keeps the expert's own. They
travel in a context variable, set by ``Switch.run``/``stream`` around the experts' calls (not
around internal calls such as keyword extraction), so that experts need no new parameter;
an expert reads them with ``requested_sampling()``. Experts that do not sample (tools, the
fakes) have nothing to apply.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from skillswitch.agents.response_format import ResponseFormat, parse_response_format
from skillswitch.exceptions import RequestError

__all__ = [
    "MAX_STOP_SEQUENCES",
    "SamplingSettings",
    "enter_request_sampling",
    "leave_request_sampling",
    "parse_sampling",
    "request_sampling",
    "requested_sampling",
]

MAX_STOP_SEQUENCES = 4  # OpenAI's limit
MAX_TOKENS = 1_000_000  # beyond any model's context
SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit integer, as OpenAI's API takes it


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    """Generation parameters (None: left to whoever comes next, in the end the endpoint's
    default). ``stop``: strings that end the text where they appear (not included).
    ``response_format``: JSON mode or a JSON Schema the answer must follow (a mapping in
    OpenAI's shape is read with ``parse_response_format``)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    response_format: ResponseFormat | None = None

    def __post_init__(self) -> None:
        _check(self)
        if self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.response_format is not None:
            asked = parse_response_format(self.response_format)
            object.__setattr__(self, "response_format", asked)

    def over(self, base: SamplingSettings) -> SamplingSettings:
        """These settings where given, ``base``'s elsewhere.

        >>> SamplingSettings(max_tokens=50).over(SamplingSettings(temperature=0.2, max_tokens=9))
        ... # doctest: +NORMALIZE_WHITESPACE
        SamplingSettings(temperature=0.2, top_p=None, max_tokens=50, seed=None, stop=None,
                         response_format=None)
        """
        asked = {f.name: getattr(self, f.name) for f in fields(self)}
        given = {name: value for name, value in asked.items() if value is not None}
        return replace(base, **given) if given else base  # nothing asked: no copy per call

    def given(self) -> dict[str, Any]:
        """The settings that are set, by name, as OpenAI's API takes them (stop as a list,
        response_format as its object)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ResponseFormat):
                out[f.name] = value.to_openai()
            elif value is not None:
                out[f.name] = list(value) if f.name == "stop" else value
        return out


def _check(settings: SamplingSettings) -> None:
    """Each setting in OpenAI's range, or a ``RequestError`` naming it and the fix."""
    temperature, top_p = settings.temperature, settings.top_p
    if temperature is not None and not (_number(temperature) and 0 <= temperature <= 2):
        raise RequestError(f"temperature is {temperature!r}; give a number from 0 to 2")
    if top_p is not None and not (_number(top_p) and 0 < top_p <= 1):
        raise RequestError(f"top_p is {top_p!r}; give a number above 0 and at most 1")
    max_tokens = settings.max_tokens
    if max_tokens is not None and not (_integer(max_tokens) and 1 <= max_tokens <= MAX_TOKENS):
        raise RequestError(
            f"max_tokens is {max_tokens!r}; give a whole number from 1 to {MAX_TOKENS:,}"
        )
    seed = settings.seed
    if seed is not None and not (_integer(seed) and SEED_RANGE[0] <= seed <= SEED_RANGE[1]):
        raise RequestError(f"seed is {seed!r}; give a whole number that fits in 64 bits")
    stop: object = settings.stop
    if stop is None:
        return
    if isinstance(stop, str) or not isinstance(stop, Sequence):
        raise RequestError(f"stop is {stop!r}; give a list of strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise RequestError(f"stop has {len(stop)} strings; give at most {MAX_STOP_SEQUENCES}")
    for index, text in enumerate(stop):
        if not isinstance(text, str) or not text:
            raise RequestError(f"stop[{index}] is {text!r}; give a non-empty string")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_sampling(
    sampling: SamplingSettings | Mapping[str, Any] | None,
) -> SamplingSettings:
    """A caller's sampling: ``SamplingSettings``, or a mapping of OpenAI's field names
    (``max_completion_tokens`` is ``max_tokens``; a string ``stop`` is one stop string).
    Unknown names and values out of range raise ``RequestError``.

    >>> parse_sampling({"temperature": 0, "stop": "\\n\\n"})  # doctest: +NORMALIZE_WHITESPACE
    SamplingSettings(temperature=0, top_p=None, max_tokens=None, seed=None, stop=('\\n\\n',),
                     response_format=None)
    """
    if sampling is None:
        return _NOTHING_ASKED
    if isinstance(sampling, SamplingSettings):
        return sampling
    if not isinstance(sampling, Mapping):
        raise RequestError(
            f"sampling is {type(sampling).__name__}; give SamplingSettings or a mapping such "
            "as {'temperature': 0.2, 'max_tokens': 256}"
        )
    values = dict(sampling)
    if "max_completion_tokens" in values:
        tokens = values.pop("max_completion_tokens")
        if values.get("max_tokens") is None:
            values["max_tokens"] = tokens
    known = {f.name for f in fields(SamplingSettings)}
    unknown = sorted(str(name) for name in values if name not in known)
    if unknown:
        raise RequestError(
            f"sampling has unknown setting(s) {', '.join(unknown)}; give "
            f"{', '.join(sorted(known))} or max_completion_tokens"
        )
    if isinstance(values.get("stop"), str):
        values["stop"] = (values["stop"],)
    elif isinstance(values.get("stop"), list):
        values["stop"] = tuple(values["stop"])
    return SamplingSettings(**values)


_NOTHING_ASKED = SamplingSettings()  # frozen: safe to share as the default
_REQUESTED: contextvars.ContextVar[SamplingSettings] = contextvars.ContextVar(
    "skillswitch_requested_sampling", default=_NOTHING_ASKED
)


def requested_sampling() -> SamplingSettings:
    """The sampling the caller of the request being answered asked for (empty: none)."""
    return _REQUESTED.get()


@contextlib.contextmanager
def request_sampling(sampling: SamplingSettings) -> Iterator[None]:
    """Within the block, experts' calls use ``sampling`` over their own settings."""
    token = _REQUESTED.set(sampling)
    try:
        yield
    finally:
        _REQUESTED.reset(token)


def enter_request_sampling(
    sampling: SamplingSettings,
) -> contextvars.Token[SamplingSettings]:
    """``request_sampling`` for async generators, which cannot hold a ``with`` across yields
    that another context may resume: pair with ``leave_request_sampling``."""
    return _REQUESTED.set(sampling)


def leave_request_sampling(token: contextvars.Token[SamplingSettings]) -> None:
    with contextlib.suppress(ValueError):  # closed from another context: nothing to restore
        _REQUESTED.reset(token)
