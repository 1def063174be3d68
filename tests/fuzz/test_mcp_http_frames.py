"""``/mcp`` of ``skillswitch serve`` (streamable HTTP) against raw frames
(tests/fuzz/mcp_http_frames.py): requests whose id the SDK read as a notification (it answered
202 and nothing, so a client waited forever), then a few hundred fuzzed frames with a fixed
seed. ``make fuzz`` sends 10,000."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest

from tests.fuzz.mcp_frames import Frames
from tests.fuzz.mcp_http_frames import BOUNDED_FRAMES, Session, fuzz, messages_of, running_session

pytestmark = pytest.mark.timeout(300)

BAD_IDS = {"a list": [1], "a float": 1.5, "true": True, "false": False, "null": None}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, cache_root: Path) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("mcp-http-fuzz")
    env = {**os.environ, "SKILLSWITCH_CACHE_DIR": str(cache_root), "HF_HUB_OFFLINE": "1"}
    with running_session(folder, env) as running:
        yield running
    log = (folder / "server.log").read_text("utf-8", "replace")
    assert "Traceback" not in log, log[-4000:]  # nothing failed unseen, shutdown included


@pytest.mark.parametrize("name", BAD_IDS)
def test_a_request_with_an_id_of_the_wrong_type_gets_an_error(session: Session, name: str) -> None:
    frame = {"jsonrpc": "2.0", "id": BAD_IDS[name], "method": "ping"}
    response = session.post(json.dumps(frame).encode())
    assert response.status_code == 400
    (error,) = messages_of(response)
    assert error["id"] is None
    assert error["error"]["code"] == types.INVALID_REQUEST
    assert "id must be a string or an integer" in error["error"]["message"]
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert session.post(json.dumps(notification).encode()).status_code == 202
    assert session.alive(0)


def test_fuzzed_frames_get_no_5xx_and_no_silence(session: Session) -> None:
    report = fuzz(session, iter(Frames(seed=20261123)), BOUNDED_FRAMES)
    print(f"\n{report.summary()}")
    assert report.frames == BOUNDED_FRAMES
    assert report.failures == 0, report.summary()
