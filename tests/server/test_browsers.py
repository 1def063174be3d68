"""What browsers meet at ``serve`` (and ``serve-models``, through the same guard): pages of the
``--cors-origin`` origins may call it (CORS, preflights included, on /v1 and /mcp); without an
API key, a page of any other site is refused before anything runs (a "simple" text/plain POST
needs no preflight, so CORS alone would not stop it from spending the experts' budget), as is
a request addressed to a name that is not loopback (DNS rebinding); ``HEAD`` is answered as
``GET``. The real app on loopback, driven with httpx; the loopback upstream counts the expert
calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError
from skillswitch.server.api import create_app
from skillswitch.server.browsers import check_cors_origins
from skillswitch.switch import Switch
from tests.support.cli import run
from tests.support.configs import DEFAULT_SKILLS
from tests.support.mcp_http import INITIALIZE, MCP_HEADERS
from tests.support.servers import serve

KEY = "sk-test-browsers-0123"
PAGE = "https://chat.example.com"
CHAT = {"model": "skillswitch", "messages": [{"role": "user", "content": "who wrote Hamlet?"}]}


def make_switch(upstream: str, cache_root: Path) -> Switch:
    experts = f"\nexperts:\n  - {{name: generalist, base_url: '{upstream}', model: echo}}\n"
    return Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)


@pytest.fixture
def open_url(upstream: str, cache_root: Path) -> Iterator[str]:
    """No key (loopback), pages of PAGE allowed."""
    app = create_app(make_switch(upstream, cache_root), cors_origins=[PAGE])
    with serve(app, lifespan="on") as base:
        yield base


@pytest.fixture
def keyed_url(upstream: str, cache_root: Path) -> Iterator[str]:
    """A key, pages of any origin allowed."""
    app = create_app(make_switch(upstream, cache_root), api_key=KEY, cors_origins=["*"])
    with serve(app, lifespan="on") as base:
        yield base


def preflight(
    url: str, origin: str, headers: str = "authorization, content-type"
) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
        timeout=30,
    )


def test_an_allowed_page_passes_the_preflight_and_reads_the_answer(
    open_url: str, chat_requests: list[dict[str, Any]]
) -> None:
    checked = preflight(f"{open_url}/v1/chat/completions", PAGE)
    assert checked.status_code == 200, checked.text
    assert checked.headers["access-control-allow-origin"] == PAGE
    assert "POST" in checked.headers["access-control-allow-methods"]
    assert "authorization" in checked.headers["access-control-allow-headers"].lower()
    before = len(chat_requests)
    answer = httpx.post(
        f"{open_url}/v1/chat/completions", json=CHAT, headers={"Origin": PAGE}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "echo: who wrote Hamlet?"
    assert answer.headers["access-control-allow-origin"] == PAGE
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-skillswitch-route" in exposed
    assert "mcp-session-id" in exposed
    assert len(chat_requests) == before + 1


def test_without_a_key_a_page_of_another_site_is_refused_before_anything_runs(
    open_url: str, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    # A "simple" request: text/plain needs no preflight, so only the server can stop it.
    refused = httpx.post(
        f"{open_url}/v1/chat/completions",
        content=json.dumps(CHAT),
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        timeout=30,
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert "'https://evil.example'" in error["message"]
    assert "--cors-origin https://evil.example" in error["message"]
    assert "access-control-allow-origin" not in refused.headers
    assert len(chat_requests) == before  # no expert was asked
    assert preflight(f"{open_url}/v1/chat/completions", "https://evil.example").status_code == 400


def test_without_a_key_loopback_pages_and_clients_without_an_origin_pass(open_url: str) -> None:
    for headers in ({}, {"Origin": "http://localhost:5173"}, {"Origin": "http://127.0.0.1:8080"}):
        answer = httpx.post(f"{open_url}/v1/chat/completions", json=CHAT, headers=headers)
        assert answer.status_code == 200, (headers, answer.text)
    for origin in ("null", "http://localhost.evil.example"):  # a sandboxed page; a look-alike
        answer = httpx.post(
            f"{open_url}/v1/chat/completions", json=CHAT, headers={"Origin": origin}
        )
        assert answer.status_code == 403, origin


def test_without_a_key_a_name_that_is_not_loopback_is_refused(open_url: str) -> None:
    port = open_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        answer = httpx.get(f"{open_url}/v1/models", headers={"Host": host}, timeout=30)
        assert answer.status_code == 200, host
    rebound = httpx.get(
        f"{open_url}/v1/models", headers={"Host": f"evil.example:{port}"}, timeout=30
    )
    assert rebound.status_code == 421
    assert "'evil.example:" in rebound.json()["error"]["message"]
    assert httpx.get(f"{open_url}/healthz", headers={"Host": "evil.example"}).status_code == 200


def test_an_allowed_page_may_open_an_mcp_session(open_url: str) -> None:
    checked = preflight(f"{open_url}/mcp", PAGE, "content-type, mcp-protocol-version")
    assert checked.status_code == 200
    opened = httpx.post(
        f"{open_url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": PAGE}, timeout=30
    )
    assert opened.status_code == 200, opened.text
    assert opened.headers["access-control-allow-origin"] == PAGE
    refused = httpx.post(
        f"{open_url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Origin": "https://evil.example"},
        timeout=30,
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == -32600  # a JSON-RPC error, as MCP clients show


def test_with_a_key_any_page_may_call_and_reads_the_refusals_too(keyed_url: str) -> None:
    checked = preflight(f"{keyed_url}/v1/chat/completions", "https://anywhere.example")
    assert checked.status_code == 200
    assert checked.headers["access-control-allow-origin"] == "*"
    keyless = httpx.post(
        f"{keyed_url}/v1/chat/completions",
        json=CHAT,
        headers={"Origin": "https://anywhere.example"},
        timeout=30,
    )
    assert keyless.status_code == 401  # the key is the check, and the page can read why
    assert keyless.headers["access-control-allow-origin"] == "*"
    answer = httpx.post(
        f"{keyed_url}/v1/chat/completions",
        json=CHAT,
        headers={"Origin": "https://anywhere.example", "Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_head_is_answered_as_get_without_the_body(keyed_url: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    for path, headers in (("/healthz", {}), ("/v1/models", auth), ("/", {})):
        got = httpx.get(f"{keyed_url}{path}", headers=headers, timeout=30)
        head = httpx.head(f"{keyed_url}{path}", headers=headers, timeout=30)
        assert (head.status_code, got.status_code) == (200, 200), path
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-type"] == got.headers["content-type"]
    assert httpx.head(f"{keyed_url}/v1/models", timeout=30).status_code == 401
    unknown = httpx.head(f"{keyed_url}/v1/nothing", headers=auth, timeout=30)
    assert unknown.status_code == 404
    assert unknown.content == b""


@pytest.mark.parametrize(
    ("origins", "key", "expected"),
    [
        (["*"], None, "'*' lets a page on any site call this server"),
        (["localhost:3000"], None, "'localhost:3000' is not an origin"),
        (["http://chat.example.com/app"], None, "'http://chat.example.com/app' is not an origin"),
        (["ftp://chat.example.com"], KEY, "is not an origin; give scheme://host[:port]"),
        (["https://user@chat.example.com"], KEY, "is not an origin"),
    ],
)
def test_origins_that_are_not_origins_are_named(
    origins: list[str], key: str | None, expected: str
) -> None:
    with pytest.raises(ConfigError, match="--cors-origin") as raised:
        check_cors_origins(origins, key)
    assert expected in str(raised.value)


def test_origins_are_kept_as_browsers_send_them() -> None:
    given = ["HTTPS://Chat.Example.com", "https://chat.example.com/", "http://localhost:3000"]
    assert check_cors_origins(given, None) == ("https://chat.example.com", "http://localhost:3000")
    assert check_cors_origins(["*"], KEY) == ("*",)


def test_cli_refuses_any_origin_without_a_key(cli_env: dict[str, str]) -> None:
    completed = run(["serve", "--cors-origin", "*"], cli_env)
    assert completed.returncode == 2
    assert "--cors-origin" in completed.stderr
    assert "--api-key-env" in completed.stderr
    completed = run(["serve-models", "--cors-origin", "localhost:3000"], cli_env)
    assert completed.returncode == 2
    assert "'localhost:3000' is not an origin" in completed.stderr
