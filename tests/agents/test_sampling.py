"""A caller's sampling settings: checked, merged over an expert's own, scoped to a request."""

from __future__ import annotations

from typing import Any

import pytest

from skillswitch.agents.sampling import (
    SamplingSettings,
    parse_sampling,
    request_sampling,
    requested_sampling,
)
from skillswitch.exceptions import RequestError


def test_openai_names_are_read_and_a_string_stop_is_one_stop() -> None:
    asked = parse_sampling(
        {"temperature": 0, "top_p": 0.5, "max_completion_tokens": 64, "seed": 7, "stop": "END"}
    )
    assert asked == SamplingSettings(temperature=0, top_p=0.5, max_tokens=64, seed=7, stop=("END",))
    assert parse_sampling({"stop": ["a", "b"]}).stop == ("a", "b")
    assert parse_sampling(None) == SamplingSettings()
    # max_tokens wins over its newer name when both are sent (as OpenAI's endpoint does)
    assert parse_sampling({"max_tokens": 5, "max_completion_tokens": 9}).max_tokens == 5


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"temperature": 2.5}, "temperature is 2.5; give a number from 0 to 2"),
        ({"temperature": float("nan")}, "temperature is nan"),
        ({"temperature": True}, "temperature is True"),
        ({"temperature": "0.2"}, "temperature is '0.2'"),
        ({"top_p": 0}, "top_p is 0; give a number above 0 and at most 1"),
        ({"max_tokens": 0}, "max_tokens is 0; give a whole number from 1 to"),
        ({"max_tokens": 2.5}, "max_tokens is 2.5"),
        ({"max_tokens": 10**7}, "give a whole number from 1 to 1,000,000"),
        ({"seed": 2**64}, "give a whole number that fits in 64 bits"),
        ({"seed": "7"}, "seed is '7'; give a whole number"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop has 5 strings; give at most 4"),
        ({"stop": ["a", ""]}, "stop[1] is ''; give a non-empty string"),
        ({"stop": 3}, "stop is 3; give a list of strings"),
        ({"top_k": 40, "logprobs": True}, "unknown setting(s) logprobs, top_k"),
        ("hot", "sampling is str; give SamplingSettings or a mapping"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(given: Any, needle: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_sampling(given)
    assert needle in str(caught.value)


def test_the_request_s_settings_go_over_the_expert_s() -> None:
    own = SamplingSettings(temperature=0.7, max_tokens=512, seed=3)
    asked = SamplingSettings(temperature=0.0, stop=("\n\n",))
    merged = asked.over(own)
    assert merged == SamplingSettings(temperature=0.0, max_tokens=512, seed=3, stop=("\n\n",))
    assert merged.given() == {"temperature": 0.0, "max_tokens": 512, "seed": 3, "stop": ["\n\n"]}
    assert SamplingSettings().over(own) == own


def test_settings_hold_within_the_request_only() -> None:
    asked = SamplingSettings(max_tokens=9)
    assert requested_sampling() == SamplingSettings()
    with request_sampling(asked):
        assert requested_sampling() is asked
    assert requested_sampling() == SamplingSettings()


def test_a_config_s_sampling_has_the_request_s_bounds() -> None:
    """An expert's configured sampling becomes SamplingSettings at start-up: what the config
    accepts must pass its checks (a seed beyond 64 bits was a RequestError there)."""
    from skillswitch.agents.sampling import MAX_TOKENS, SEED_RANGE
    from skillswitch.config.models import SamplingConfig

    properties = SamplingConfig.model_json_schema()["properties"]
    assert properties["max_tokens"]["anyOf"][0]["maximum"] == MAX_TOKENS
    seed = properties["seed"]["anyOf"][0]
    assert (seed["minimum"], seed["maximum"]) == SEED_RANGE
    largest = SamplingConfig(seed=SEED_RANGE[1], max_tokens=MAX_TOKENS)
    assert SamplingSettings(**largest.model_dump()).seed == SEED_RANGE[1]
