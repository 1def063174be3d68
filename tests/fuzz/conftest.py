"""The server the HTTP fuzz tests talk to: ``create_app`` on loopback (tests/fuzz/served.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.fuzz.served import EXPERTS, KEY, MAX_BODY
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve


@pytest.fixture(scope="module")
def served(upstream: str, cache_root: Path) -> Iterator[str]:
    """The base URL of ``skillswitch serve``'s app (its lifespan on: it closes the switch)."""
    config = parse_config(DEFAULT_SKILLS + EXPERTS.format(u=upstream))
    switch = Switch.from_config(config, cache_dir=cache_root)
    with serve(create_app(switch, api_key=KEY, max_body_bytes=MAX_BODY), lifespan="on") as url:
        yield url
