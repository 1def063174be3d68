"""The web playground at ``/``: its files over plain HTTP, and the page end to end in headless
Chromium (Debian's ``chromium``, installed by ``make browser``, driven by Playwright) against
``create_app(switch)`` on loopback, whose experts are the loopback upstream of
tests/support/chat_app.py (``echo`` answers ``echo: <last message>`` word by word; ``fail-503``
fails; ``drop-stream`` dies mid-stream; ``stall`` answers late).

What the page shows is checked against what the API answers for the same request: the answer's
text, and the skill, score and experts of its trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.server.api.playground.route import CONTENT_SECURITY_POLICY
from skillswitch.switch import Switch
from tests.server.test_serve_api import serve_app
from tests.support.configs import DEFAULT_SKILLS

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "playground.png"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, and on a closed network
# that is a flood of refused connections; the rest keep a headless run plain and quick.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
KEY = "sk-playground-0123456789"
TIMEOUT_MS = 20_000
TRANSLATE = "translate good morning into French"
MATH = "what is 15% of 80"

EXPERTS = """
experts:
  - {{name: calculator, base_url: '{u}', model: echo, skills: [math],
      prices: {{input_per_million: 1000000, output_per_million: 2000000}}}}
  - {{name: solver, base_url: '{u}', model: tool-caller, tools: [calculator],
      skills: [unit_conversion]}}
  - {{name: polyglot, base_url: '{u}', model: echo, skills: [translation]}}
  - {{name: broken, base_url: '{u}', model: fail-503, skills: [summarization]}}
  - {{name: dropper, base_url: '{u}', model: drop-stream, skills: [smalltalk]}}
  - {{name: sloth, base_url: '{u}', model: stall, skills: [brainstorming], timeout_s: 8}}
  - {{name: generalist, base_url: '{u}', model: echo}}
dispatch: {{max_experts: 2, retry_attempts: 1, breaker_failures: 1000}}
"""


def make_switch(upstream: str, cache_root: Path) -> Switch:
    text = DEFAULT_SKILLS + EXPERTS.format(u=upstream)
    return Switch.from_config(parse_config(text), cache_dir=cache_root)


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    """The app without an API key (the app's lifespan closes its switch)."""
    with serve_app(create_app(make_switch(upstream, cache_root))) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_url(upstream: str, cache_root: Path) -> Iterator[str]:
    with serve_app(create_app(make_switch(upstream, cache_root), api_key=KEY)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        reason = f"Debian's chromium is not installed ({CHROMIUM}); `make browser` installs it"
        if os.environ.get("SKILLSWITCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SKILLSWITCH_REQUIRE_BROWSER=1: required here)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, temporary user-data-dir.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            launched.close()


class Problems:
    """Uncaught script errors and CSP refusals seen by a page (there must be none)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.seen.append(message.text)

    def page_error(self, error: Exception) -> None:
        self.seen.append(f"uncaught: {error}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test: its own sessionStorage (so no API key carried over)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    problems = Problems()
    opened.on("console", problems.console)
    opened.on("pageerror", problems.page_error)
    try:
        yield opened
        assert problems.seen == []
    finally:
        context.close()


def api_answer(url: str, model: str, messages: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
    """The non-streamed answer of the API to the same request, and its trace."""
    response = httpx.post(
        f"{url}/v1/chat/completions", json={"model": model, "messages": messages}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["choices"][0]["message"]["content"], body["skillswitch"]


def open_playground(page: Page, url: str, model: str) -> None:
    page.goto(url)
    expect(page.locator("#model")).to_be_enabled()
    expect(page.locator(f"#model option[value='{model}']")).to_have_count(1)
    page.select_option("#model", model)


def ask(page: Page, text: str) -> Any:
    """Sends ``text``; the new turn once its answer is done (or failed)."""
    turns = page.locator("#conversation .turn")
    before = turns.count()
    page.fill("#prompt", text)
    page.click("#send")
    turn = turns.nth(before)
    expect(turn.locator(".route")).not_to_have_attribute("data-state", "pending")
    return turn


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assert_route_shows(turn: Any, trace: dict[str, Any]) -> None:
    route = turn.locator(".route")
    expect(route).to_have_attribute("data-state", "done")
    skills = trace["routing"]["skills"]
    assert skills, trace
    expect(route.locator(".skill-name")).to_have_text([s["skill"] for s in skills])
    expect(route.locator(".skill-score")).to_have_text([f"{s['score']:.3f}" for s in skills])
    expect(route.locator(".expert-name")).to_have_text([e["expert"] for e in trace["experts"]])


# --- plain HTTP ---------------------------------------------------------------------------


def test_the_page_and_its_files_are_served_with_a_strict_policy(keyed_url: str) -> None:
    page = httpx.get(f"{keyed_url}/", timeout=10)  # open without the API key
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page.text, flags=re.DOTALL)
    assert scripts == [(' src="/playground/playground.js" defer', "")]  # no inline script
    assert "http://" not in page.text
    assert "https://" not in page.text  # nothing from outside the server

    for name, media_type in (
        ("playground.js", "text/javascript; charset=utf-8"),
        ("playground.css", "text/css; charset=utf-8"),
    ):
        asset = httpx.get(f"{keyed_url}/playground/{name}", timeout=10)
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == media_type
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "innerHTML" not in asset.text  # text is inserted as text
        assert "https://" not in asset.text

    for missing in ("/playground/nope.js", "/playground/index.html", "/playground/"):
        response = httpx.get(f"{keyed_url}{missing}", timeout=10)
        assert response.status_code == 404, missing
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "not_found"
    assert "playground.js" in httpx.get(f"{keyed_url}/playground/x", timeout=10).text
    # The API behind it still wants the key.
    assert httpx.get(f"{keyed_url}/v1/models", timeout=10).status_code == 401


# --- in the browser -----------------------------------------------------------------------


def test_the_model_picker_lists_routing_skills_and_experts(page: Page, url: str) -> None:
    open_playground(page, url, "skillswitch")
    models = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
    options = page.locator("#model option")
    expect(options).to_have_count(len(models))
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    assert sorted(values) == sorted(m["id"] for m in models)
    assert {"skillswitch", "skillswitch/math", "calculator", "polyglot"} <= set(values)
    expect(page.locator("#model")).to_have_value("skillswitch")


def test_a_conversation_streams_answers_with_their_routes(page: Page, url: str) -> None:
    open_playground(page, url, "skillswitch")
    first = ask(page, TRANSLATE)
    text, trace = api_answer(url, "skillswitch", [user(TRANSLATE)])
    assert trace["routing"]["label"] == "translation"
    expect(first.locator(".msg.assistant .text")).to_have_text(text)
    expect(first.locator(".msg.assistant")).to_have_class(re.compile(r"\bdone\b"))
    assert_route_shows(first, trace)
    route = first.locator(".route")
    # Two echo experts (the skill's and the generalist) say the same: no aggregator call.
    assert [e["expert"] for e in trace["experts"]] == ["polyglot", "generalist"]
    assert trace["aggregation"]["mode"] == "agreement"
    expect(route.locator(".summary")).to_contain_text("polyglot, generalist")
    expect(route.locator(".stage.aggregator")).to_contain_text("aggregator skipped")
    expect(route.locator(".stage.request")).to_contain_text("routed by skill")

    # The second turn sends the whole conversation: the API, given the same history, answers
    # the same and counts the same prompt tokens (the echo upstream counts every message).
    second = ask(page, MATH)
    history = [user(TRANSLATE), {"role": "assistant", "content": text}, user(MATH)]
    text2, trace2 = api_answer(url, "skillswitch", history)
    expect(second.locator(".msg.assistant .text")).to_have_text(text2)
    assert_route_shows(second, trace2)
    usage = trace2["usage"]
    answer_stage = second.locator(".stage.answer")
    expect(answer_stage).to_contain_text(
        f"{usage['prompt_tokens']} in / {usage['completion_tokens']} out"
    )
    assert usage["cost"] > 0  # calculator has prices
    expect(answer_stage).to_contain_text(f"{usage['cost']:g}")
    expect(second.locator(".stage.request dd[data-term='messages']")).to_have_text("3")

    # Both turns and their routes in one picture (the conversation is the part that scrolls).
    height = page.locator("#conversation").evaluate("node => node.scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(height) + 200})
    page.locator("#conversation").evaluate("node => { node.scrollTop = 0; }")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_a_forced_skill_is_shown_as_forced(page: Page, url: str) -> None:
    open_playground(page, url, "skillswitch/math")
    turn = ask(page, "write a haiku about the sea")
    text, trace = api_answer(url, "skillswitch/math", [user("write a haiku about the sea")])
    assert trace["routing"]["classifier"] == "forced"
    expect(turn.locator(".msg.assistant .text")).to_have_text(text)
    assert_route_shows(turn, trace)
    expect(turn.locator(".skill-score")).to_have_text(["1.000"])
    expect(turn.locator(".stage.request")).to_contain_text("forced skill")
    expect(turn.locator(".expert-name")).to_have_text(["calculator", "generalist"])


def test_tool_calls_are_shown_with_their_arguments_and_results(page: Page, url: str) -> None:
    open_playground(page, url, "solver")
    turn = ask(page, "17 * 23")
    text, trace = api_answer(url, "solver", [user("17 * 23")])
    (call,) = trace["results"][0]["tool_calls"]
    assert call["tool"] == "calculator"
    expect(turn.locator(".msg.assistant .text")).to_have_text(text)
    row = turn.locator(".tools tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".tool-name")).to_have_text("calculator")
    expect(row).to_contain_text("17 * 23")
    expect(row).to_contain_text(str(call["result"]))


def test_server_text_is_shown_as_text_never_as_html(page: Page, url: str) -> None:
    open_playground(page, url, "polyglot")
    hostile = "<img src=x id=injected> <b>bold</b>"
    turn = ask(page, hostile)
    expect(turn.locator(".msg.user .text")).to_have_text(hostile)
    expect(turn.locator(".msg.assistant .text")).to_have_text(f"echo: {hostile}")
    expect(page.locator("#injected")).to_have_count(0)
    expect(page.locator("#conversation b")).to_have_count(0)
    expect(turn.locator(".stage.request")).to_contain_text("one expert, no routing")


def test_a_failing_expert_shows_the_error(page: Page, url: str) -> None:
    open_playground(page, url, "broken")
    turn = ask(page, "hello")
    error = turn.locator(".error-box")
    expect(error).to_contain_text("HTTP 502")
    expect(error).to_contain_text("upstream_error")
    expect(error).to_contain_text("expert 'broken'")
    route = turn.locator(".route")
    expect(route).to_have_attribute("data-state", "failed")
    # The error's trace is drawn: the expert that was asked, its error and its attempts.
    expect(route.locator(".stage.experts")).to_contain_text("broken")
    expect(route.locator(".stage.experts")).to_contain_text("HTTP 503")
    expect(route.locator(".stage.aggregator")).to_contain_text("no expert answered")

    # A failed turn is left out of the conversation: the next one is sent alone.
    page.select_option("#model", "polyglot")
    again = ask(page, "hola")
    expect(again.locator(".msg.assistant .text")).to_have_text("echo: hola")
    expect(again.locator(".stage.request dd[data-term='messages']")).to_have_text("1")


def test_a_stream_that_breaks_midway_shows_the_error(page: Page, url: str) -> None:
    open_playground(page, url, "dropper")
    turn = ask(page, "one two three four")
    error = turn.locator(".error-box")
    expect(error).to_contain_text("The stream broke")
    expect(error).to_contain_text("expert 'dropper'")
    expect(turn.locator(".msg.assistant .text")).to_have_text(re.compile(r"^echo:"))


def test_the_stop_button_cancels_the_answer(page: Page, url: str) -> None:
    open_playground(page, url, "sloth")
    page.fill("#prompt", "take your time")
    page.click("#send")
    expect(page.locator("#stop")).to_be_visible()
    page.click("#stop")
    turn = page.locator("#conversation .turn").last
    expect(turn.locator(".msg.assistant")).to_have_class(re.compile(r"\bstopped\b"))
    expect(turn.locator(".status")).to_contain_text("Stopped")
    expect(turn.locator(".error-box")).to_have_count(0)
    expect(page.locator("#send")).to_be_visible()


def test_an_api_key_is_asked_for_and_then_sent(page: Page, keyed_url: str) -> None:
    page.goto(keyed_url)
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("no API key was sent")
    page.fill("#key-input", "not-the-key")
    page.click("#key-save")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("not valid")
    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(dialog).to_be_hidden()
    expect(page.locator("#model option[value='polyglot']")).to_have_count(1)
    assert page.evaluate("sessionStorage.getItem('skillswitch.apiKey')") == KEY

    page.select_option("#model", "skillswitch")
    turn = ask(page, TRANSLATE)
    expect(turn.locator(".msg.assistant .text")).to_have_text(f"echo: {TRANSLATE}")
    expect(turn.locator(".expert-name")).to_have_text(["polyglot", "generalist"])
    expect(page.locator("#key-state")).to_be_visible()


def test_the_trace_fields_the_page_reads_exist(url: str) -> None:
    """The names the page reads from the trace (schema skillswitch.trace/1) are the trace's:
    a rename shows up here, not as an empty panel."""
    _, trace = api_answer(url, "skillswitch", [user(MATH)])
    assert trace["schema"] == "skillswitch.trace/1"
    result = trace["results"][0]
    parts = (
        trace,
        trace["routing"],
        trace["routing"]["skills"][0],
        trace["routing"]["timing_ms"],
        trace["experts"][0],
        result,
        result["attempts"][0],
        result["usage"],
        trace["aggregation"],
        trace["timing_ms"],
    )
    names = {name for part in parts for name in part}
    script = httpx.get(f"{url}/playground/playground.js", timeout=10).text
    read = set(re.findall(r"\.([a-z_]+)\b", script))
    for name in (
        *("routing", "recruitment", "experts", "results", "aggregation", "usage", "timing_ms"),
        *("label", "skills", "candidates", "out_of_scope", "confidence", "threshold"),
        *("classifier", "encoder", "truncated", "skill", "score", "encode", "classify"),
        *("expert", "reason", "fallback_for", "ok", "output", "error", "latency_ms"),
        *("tool_calls", "attempts", "number", "outcome", "duration_ms", "waited_ms", "status"),
        *("prompt_tokens", "completion_tokens", "cost", "mode", "answers", "detail"),
        *("route", "dispatch", "total"),
    ):
        assert name in names, f"the trace has no {name!r}"
        assert name in read, f"the page does not read {name!r}"
