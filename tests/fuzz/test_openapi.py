"""schemathesis against ``skillswitch serve``'s own OpenAPI spec (``/openapi.json``), on
loopback with healthy experts (the echo upstream, tests/support/chat_app.py): no 5xx, no hang,
every answer as the spec says (status, content type, headers, body schema, server-sent events),
and every error in OpenAI's shape. Valid and invalid cases for every operation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.served import AUTH, MODELS, REQUEST_TIMEOUT_S, assert_openai_error


@pytest.fixture(scope="module")
def api(served: str) -> Any:
    return schemathesis.openapi.from_url(f"{served}/openapi.json")


# Every operation of the spec, fuzzed with valid and invalid data. (schemathesis.pytest's
# from_fixture does not run under pytest 9, so hypothesis drives its strategies directly.)
OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/route"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]


def openai_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schemathesis check: every error in OpenAI's shape."""
    if response.status_code < 400:
        return None
    assert_openai_error(response.status_code, response.content)
    return True


def test_every_operation_of_the_spec_is_fuzzed(api: Any) -> None:
    listed = {(op.ok().method.upper(), op.ok().path) for op in api.get_all_operations()}
    assert listed == set(OPERATIONS)


# Operations with inputs get invalid data too; the others have none to break.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if method == "POST" or mode is GenerationMode.POSITIVE
]
USER_TEXT = st.text(min_size=1, max_size=200).filter(str.strip)


@st.composite
def steered(draw: st.DrawFn, operation: Any, mode: GenerationMode) -> Any:
    """The spec's cases; most valid ones name an existing model and end with a user's text, so
    that they reach routing and the experts rather than a 404 or a 400 (the spec cannot say
    which models exist, nor that a conversation must end with a user message)."""
    case = draw(operation.as_strategy(generation_mode=mode))
    if mode is not GenerationMode.POSITIVE or draw(st.integers(0, 9)) == 7:
        return case  # one in ten valid cases as generated (hypothesis favours 0: not that)
    if case.path_parameters and "model" in case.path_parameters:
        case.path_parameters["model"] = draw(st.sampled_from(MODELS))
    body = case.body
    if not isinstance(body, dict):
        return case
    text = draw(USER_TEXT)
    if "model" in body:
        body["model"] = draw(st.sampled_from(MODELS))
        for refused in ("n", "functions", "function_call", "tools", "tool_choice"):
            if draw(st.booleans()):  # each a 400 in most of its generated forms
                body.pop(refused, None)
    if "messages" in body:
        how = draw(st.sampled_from(["append", "replace", "system"]))
        user = {"role": "user", "content": text}
        if how == "append":
            body["messages"].append(user)
        else:
            system = [{"role": "system", "content": draw(USER_TEXT)}] if how == "system" else []
            body["messages"] = [*system, user]
    elif "input" in body:
        body["input"] = text
    return case


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_the_server_answers_as_its_spec_says(
    api: Any, method: str, path: str, mode: GenerationMode
) -> None:
    """All of schemathesis' checks but positive_data_acceptance: a body the spec allows may
    still be refused with a documented 400 (an empty conversation, one ending with the
    assistant), which no JSON schema can say."""

    statuses: Counter[int] = Counter()

    @given(case=steered(api[path][method], mode))
    @fuzz_settings(examples=50, fuzz_examples=1000)
    def answers(case: Any) -> None:
        response = case.call_and_validate(
            headers=AUTH,
            timeout=REQUEST_TIMEOUT_S,
            additional_checks=[openai_error_shape],
            excluded_checks=[positive_data_acceptance],
        )
        statuses[response.status_code] += 1

    answers()
    # The figures of make fuzz (run with -s): requests sent and their statuses.
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    print(f"\nschemathesis {method} {path} {mode.value}: {statuses.total()} requests ({shown})")
    assert not any(status >= 500 for status in statuses)
