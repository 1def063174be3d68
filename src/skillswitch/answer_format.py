"""The answer in the form the caller's ``response_format`` asks for, or an error that says why
it cannot be.

Every model that answers the request was asked for the form (``agents.response_format``), but
tools answer in text, an endpoint or a local model's grammar may not enforce every keyword of
a schema (and ``max_tokens`` can cut JSON short), and the aggregator's synthesis or a vote may
pick a reply that is not in it. So the final answer is read in the form; one that is
not in it is restated by the aggregator (with the form asked of it too), once, keeping what it
says; what still is not in the form fails the request with ``ResponseFormatError``. Nothing in
another form is returned as if it were in the one asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from skillswitch.agents.aggregate import Aggregation, reformat_prompt
from skillswitch.agents.base import ExpertReply
from skillswitch.agents.messages import Message
from skillswitch.agents.response_format import ResponseFormat
from skillswitch.exceptions import ResponseFormatError

__all__ = ["Restate", "in_format", "out_of_scope_error"]

Restate = Callable[[Sequence[Message]], Awaitable[ExpertReply | str]]
"""Sends the aggregator the messages; its reply, or why it gave none."""


async def in_format(
    aggregation: Aggregation,
    question: Sequence[Message],
    response_format: ResponseFormat | None,
    *,
    author: str,
    aggregator: str | None,
    restate: Restate | None,
) -> Aggregation:
    """``aggregation`` with its text read in ``response_format`` (unchanged without one, or
    when it calls the caller's tools); else restated by the ``aggregator`` (mode
    ``formatted``). ``author`` names who wrote the text, for the error. Raises
    ``ResponseFormatError`` (without a trace: the caller adds it) when it cannot be had."""
    if response_format is None or aggregation.tool_calls:
        return aggregation
    try:
        return replace(aggregation, text=response_format.read(aggregation.text))
    except ValueError as exc:
        problem = str(exc)
    wrong = (
        f"the answer from {author} is not in the form response_format asks for "
        f"{response_format.label}: {problem}"
    )
    if aggregator is None or restate is None:
        raise ResponseFormatError(
            f"{wrong}; no aggregator is configured to put it in that form: set "
            "dispatch.aggregator to an expert whose model writes JSON, or send the request "
            "without response_format"
        )
    if aggregation.mode == "aggregator_failed":
        raise ResponseFormatError(
            f"{wrong}; the aggregator {aggregator} could not put it in that form, as it "
            f"failed: {aggregation.error}"
        )
    prompt = reformat_prompt(question, aggregation.text, response_format.instruction())
    reply = await restate(prompt)
    if isinstance(reply, str):
        raise ResponseFormatError(
            f"{wrong}; the aggregator {aggregator} failed to restate it: {reply}"
        )
    try:
        text = response_format.read(reply.text)
    except ValueError as again:
        raise ResponseFormatError(
            f"{wrong}; restated by the aggregator {aggregator}, {again}"
        ) from None
    return replace(
        aggregation,
        text=text,
        mode="formatted",
        usage=aggregation.usage + reply.usage,
        detail=f"{aggregator} restated the answer of {author} as {response_format.label}",
    )


def out_of_scope_error(reply: str, response_format: ResponseFormat) -> ResponseFormatError:
    """The error for a request outside every skill when a form was asked: its reply is the
    config's text, which no expert wrote and no aggregator should dress up as data."""
    return ResponseFormatError(
        f"the request is outside every skill this switch serves; its reply ({reply!r}) is text, "
        f"not the {response_format.label} that response_format asks for: rephrase the request, "
        "or send it without response_format"
    )
