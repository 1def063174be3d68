"""Tool retrieval on a small synthetic catalogue: lexical, dense (real MiniLM), fusion, steps,
server scores, argument values, CJK descriptions, "no tool applies", bounds and bad input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from skillswitch.exceptions import RequestError
from skillswitch.router.encoders import Encoder
from skillswitch.router.encoders.base import Embeddings
from skillswitch.tools.retrieval import (
    BM25,
    CatalogueEntry,
    RetrievalSettings,
    ToolIndex,
    split_steps,
    tokenize,
)


def _schema(**parameters: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": text} for name, text in parameters.items()
        },
    }


CATALOGUE = (
    CatalogueEntry(
        "weather",
        "get_forecast",
        "Get the weather forecast for a city for the next days.",
        _schema(city="City name", days="How many days ahead"),
    ),
    CatalogueEntry(
        "finance",
        "get_stock_price",
        "Latest trading price of a stock by its ticker symbol.",
        _schema(ticker="Ticker symbol such as MSFT"),
    ),
    CatalogueEntry(
        "files",
        "write_file",
        "Create a new file or overwrite an existing file with text content.",
        _schema(path="Where to write", content="The text to write"),
    ),
    CatalogueEntry(
        "files",
        "read_file",
        "Read the full text content of a file from disk.",
        _schema(path="The file to read"),
    ),
    CatalogueEntry(
        "maps",
        "geocode_address",
        "Convert a street address into latitude and longitude coordinates.",
        _schema(address="Street address"),
    ),
    CatalogueEntry(
        "mail",
        "send_email",
        "Send an email message to a recipient.",
        _schema(to="Recipient address", subject="Subject line", body="Message body"),
    ),
    CatalogueEntry(
        "units",
        "convert_temperature",
        "Convert a temperature between Celsius and Fahrenheit.",
        _schema(value="Degrees", unit="celsius or fahrenheit"),
    ),
    CatalogueEntry(
        "translate",
        "translate_text",
        "Translate text into another language.",
        _schema(text="Text", target_language="Language code"),
    ),
)


class ConstantEncoder:
    """Every text gets the same vector, so the dense part cannot tell tools apart."""

    name = identity = "constant"

    def encode(self, texts: Sequence[str]) -> Embeddings:
        return np.full((len(texts), 4), 0.5, dtype=np.float32)


@pytest.fixture(scope="module")
def index(minilm: Encoder) -> ToolIndex:
    return ToolIndex(CATALOGUE, minilm)


def test_tokenize_splits_names_and_stems() -> None:
    assert tokenize("getWeatherForecast") == ["get", "weather", "forecast"]
    assert tokenize("write_file read-files HTTPServer") == [
        "writ",
        "fil",
        "read",
        "fil",
        "http",
        "server",
    ]
    assert tokenize("creating created creates") == ["creat", "creat", "creat"]
    assert tokenize("搜索") == ["搜", "索", "搜索"]
    assert tokenize("the and of") == []


def test_bm25_prefers_rare_terms_and_ignores_unknown_ones() -> None:
    bm25 = BM25([["weather", "city"], ["stock", "city"], ["city"]])
    scores = bm25.scores(["stock", "city"])
    assert scores.argmax() == 1
    assert bm25.idf("stock") > bm25.idf("city") > 0
    assert bm25.scores(["unknown"]).tolist() == [0.0, 0.0, 0.0]
    assert bm25.matches(["stock", "city", "unknown"]).tolist() == [1.0, 2.0, 1.0]


def test_lexical_match_decides_when_the_dense_part_is_blind() -> None:
    blind = ToolIndex(CATALOGUE, ConstantEncoder())
    found = blind.search("MSFT ticker", k=3)
    assert found.names[0] == "get_stock_price"
    # A word in no tool leaves every score equal: catalogue order, stable.
    assert blind.search("zzzz", k=3).names == ["get_forecast", "get_stock_price", "write_file"]


def test_dense_match_without_shared_words(index: ToolIndex) -> None:
    query = "Will it rain in Oslo tomorrow?"
    assert not set(tokenize(query)) & set(tokenize("get_forecast weather forecast city days"))
    found = index.search(query, k=3)
    assert found.names[0] == "get_forecast"
    assert not found.no_tool_applies


def test_score_is_cosine_plus_scaled_bm25(minilm: Encoder) -> None:
    query = "convert the temperature of my oven"
    # The dense text of a tool is its name in words, then its description.
    tool_text = "convert temperature: Convert a temperature between Celsius and Fahrenheit."
    cosine = minilm.encode([query])[0] @ minilm.encode([tool_text])[0]
    dense_only = ToolIndex(CATALOGUE, minilm, settings=RetrievalSettings(lexical_weight=0.0))
    fused = ToolIndex(CATALOGUE, minilm, settings=RetrievalSettings(lexical_weight=0.3))
    plain = {hit.name: hit.score for hit in dense_only.search(query, k=8).hits}
    mixed = {hit.name: hit.score for hit in fused.search(query, k=8).hits}
    assert plain["convert_temperature"] == pytest.approx(float(cosine), abs=1e-5)
    # The best lexical match gets the whole weight; a tool sharing no word gets none.
    assert mixed["convert_temperature"] - plain["convert_temperature"] == pytest.approx(0.3)
    assert mixed["send_email"] == pytest.approx(plain["send_email"])


def test_multi_step_request_finds_a_tool_for_each_step(minilm: Encoder) -> None:
    stepwise = ToolIndex(CATALOGUE, minilm, settings=RetrievalSettings(split_steps=True))
    found = stepwise.search(
        "Convert 30 degrees Celsius to Fahrenheit, then email the result to my boss", k=2
    )
    assert found.texts[1:] == (
        "Convert 30 degrees Celsius to Fahrenheit",
        "email the result to my boss",
    )
    assert set(found.names) == {"convert_temperature", "send_email"}
    by_name = {hit.name: hit.step for hit in found.hits}
    assert by_name == {"convert_temperature": 1, "send_email": 2}


def test_without_step_ranking_the_steps_still_count_for_relevance(
    minilm: Encoder, index: ToolIndex
) -> None:
    request = "Tell me a joke about penguins, then email the result to my boss"
    found = index.search(request, k=3)  # the default ranks the whole request only
    assert found.texts[1:] == ("Tell me a joke about penguins", "email the result to my boss")
    assert {hit.step for hit in found.hits} == {0}
    stepwise = ToolIndex(CATALOGUE, minilm, settings=RetrievalSettings(split_steps=True))
    assert found.relevance == pytest.approx(stepwise.search(request, k=3).relevance)
    whole = (
        minilm.encode([request])[0]
        @ minilm.encode(["send email: Send an email message to a recipient."])[0]
    )
    assert found.relevance > float(whole)  # the email step is the relevant part


def test_split_steps() -> None:
    assert split_steps("Find the trending repos. Then, save a summary to /tmp/notes.md") == [
        "Find the trending repos.",
        "save a summary to /tmp/notes.md",
    ]
    assert split_steps("Get the forecast for Paris and save it to a file.") == [
        "Get the forecast for Paris",
        "save it to a file.",
    ]
    assert split_steps("compare the pros and cons of tea") == []
    assert split_steps("look up the weather in Paris; and then book a table for two") == [
        "look up the weather in Paris;",
        "book a table for two",
    ]
    assert split_steps("x" * 2000 + ". Then do something else entirely") == []


def test_no_tool_applies_to_an_unrelated_request(index: ToolIndex) -> None:
    unrelated = index.search("Tell me a joke about penguins", k=3)
    assert unrelated.no_tool_applies
    assert unrelated.relevance < unrelated.threshold
    assert unrelated.hits  # the ranking is still there for callers who want it
    related = index.search("Save my notes to notes.txt", k=3)
    assert not related.no_tool_applies
    assert related.names[0] == "write_file"


def test_server_scores_lift_the_tools_of_the_server_the_request_is_about(
    minilm: Encoder,
) -> None:
    twins = (
        CatalogueEntry(
            "github",
            "list_items",
            "List items.",
            server_description="GitHub: repositories, issues and pull requests",
        ),
        CatalogueEntry(
            "todo",
            "list_items",
            "List items.",
            server_description="A personal to-do list with reminders",
        ),
    )
    settings = RetrievalSettings(server_min_tools=2)
    query = "show the open pull requests of my repository"
    assert [h.server for h in ToolIndex(twins, minilm, settings=settings).search(query).hits] == [
        "github",
        "todo",
    ]
    assert [
        h.server for h in ToolIndex(twins[::-1], minilm, settings=settings).search(query).hits
    ] == [
        "github",
        "todo",
    ]
    # Below server_min_tools the twins tie, and catalogue order decides.
    small = ToolIndex(twins[::-1], minilm)
    assert [h.server for h in small.search(query).hits] == ["todo", "github"]


def _scores(index: ToolIndex, request: str) -> dict[str, float]:
    return {hit.name: hit.score for hit in index.search(request, k=len(index)).hits}


@pytest.mark.parametrize(
    ("request_text", "lifted"),
    [
        (
            "Summarise the forecast and save it to /root/markdown/paris.md",
            {"write_file", "read_file"},
        ),
        ("put the summary in report.pdf", {"write_file", "read_file"}),
        (r"keep it in C:\Users\me\notes.txt", {"write_file", "read_file"}),
        ("what does https://example.com/a/index.html say?", {"fetch_page"}),
        ("what does www.example.com say?", {"fetch_page"}),
        ("Summarise the forecast and/or the 1/2/3 plan", set()),
    ],
)
def test_a_path_or_url_in_the_request_lifts_the_tools_that_take_one(
    minilm: Encoder, request_text: str, lifted: set[str]
) -> None:
    catalogue = (
        *CATALOGUE,
        CatalogueEntry(
            "web",
            "fetch_page",
            "Download a web page as text.",
            {"type": "object", "properties": {"targetUrl": {}}, "required": ["targetUrl"]},
        ),
    )
    # Only required parameters count: CATALOGUE's write_file and read_file require none.
    required = tuple(
        CatalogueEntry(
            e.server,
            e.name,
            e.description,
            {**e.input_schema, "required": ["path"]} if e.server == "files" else e.input_schema,
        )
        for e in catalogue
    )
    plain = ToolIndex(required, minilm, settings=RetrievalSettings(argument_weight=0.0))
    weighted = ToolIndex(required, minilm, settings=RetrievalSettings(argument_weight=0.25))
    before, after = _scores(plain, request_text), _scores(weighted, request_text)
    assert {name for name in before if after[name] - before[name] > 0.2} == lifted
    for name in before.keys() - lifted:
        assert after[name] == pytest.approx(before[name])
    loose = ToolIndex(catalogue, minilm, settings=RetrievalSettings(argument_weight=0.25))
    assert _scores(loose, request_text)["write_file"] == pytest.approx(before["write_file"])


def test_a_path_in_the_request_finds_the_writer(minilm: Encoder) -> None:
    catalogue = (
        CatalogueEntry(
            "notes",
            "write_note",
            "Write a note with a title and markdown content to the knowledge base.",
            {"type": "object", "properties": {"title": {}, "content": {}}, "required": ["title"]},
        ),
        CatalogueEntry(
            "files",
            "write_file",
            "Create a new file or overwrite an existing file with new content.",
            {"type": "object", "properties": {"path": {}, "content": {}}, "required": ["path"]},
        ),
    )
    # MiniLM alone puts the note first (0.341 against 0.337); the path decides.
    request = "Save the summary to /root/docs/summary.md"
    assert ToolIndex(catalogue, minilm).search(request).names[0] == "write_file"
    blind = RetrievalSettings(argument_weight=0.0)
    assert ToolIndex(catalogue, minilm, settings=blind).search(request).names[0] == "write_note"


class RecordingEncoder(ConstantEncoder):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> Embeddings:
        self.seen.extend(texts)
        return super().encode(texts)


def test_a_tool_described_in_cjk_is_embedded_by_its_names() -> None:
    catalogue = (
        CatalogueEntry(
            "trends-hub",
            "get-bbc-news",
            "获取 BBC 新闻，提供全球新闻、商业、科技等资讯",
            _schema(category="新闻分类"),
        ),
        CatalogueEntry("weather", "get_forecast", "天气 forecast for a city for the next days."),
        CatalogueEntry("mail", "send_email", ""),
    )
    english = RecordingEncoder()
    ToolIndex(catalogue, english)
    assert english.seen == [
        "trends hub: get bbc news: BBC (category)",
        "get forecast: 天气 forecast for a city for the next days.",  # 2 CJK of 40 characters
        "send email",
    ]
    multilingual = RecordingEncoder()
    ToolIndex(catalogue, multilingual, settings=RetrievalSettings(encoder_reads_cjk=True))
    assert multilingual.seen[0] == "get bbc news: 获取 BBC 新闻，提供全球新闻、商业、科技等资讯"


def test_k_bounds_and_determinism(index: ToolIndex) -> None:
    assert len(index.search("weather", k=1).hits) == 1
    assert len(index.search("weather", k=100).hits) == len(CATALOGUE)
    first = index.search("read a file and translate it", k=5)
    assert index.search("read a file and translate it", k=5) == first
    assert [s.names for s in index.search_many(["weather", "send mail"], k=2)] == [
        index.search("weather", k=2).names,
        index.search("send mail", k=2).names,
    ]


def test_empty_catalogue_has_no_tool(minilm: Encoder) -> None:
    empty = ToolIndex((), minilm)
    found = empty.search("what's the weather", k=5)
    assert found.hits == ()
    assert found.no_tool_applies
    assert len(empty) == 0


@pytest.mark.parametrize("k", [0, -3, True, 2.5])
def test_bad_k_is_an_error(index: ToolIndex, k: Any) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search("weather", k=k)


@pytest.mark.parametrize("request_text", ["", "   \n ", None])
def test_empty_or_non_text_request_is_an_error(index: ToolIndex, request_text: Any) -> None:
    with pytest.raises(RequestError):
        index.search(request_text)


def test_bad_settings_are_errors() -> None:
    with pytest.raises(ValueError, match="lexical_weight"):
        RetrievalSettings(lexical_weight=-0.1)
    with pytest.raises(ValueError, match="server_min_tools"):
        RetrievalSettings(server_min_tools=0)
    with pytest.raises(ValueError, match="argument_weight"):
        RetrievalSettings(argument_weight=-1.0)


def test_parameters_include_nested_properties() -> None:
    entry = CatalogueEntry(
        "s",
        "t",
        input_schema={
            "type": "object",
            "properties": {
                "where": {"type": "object", "properties": {"city": {"description": "City"}}},
                "tags": {"type": "array", "items": {"properties": {"label": {}}}},
            },
        },
    )
    assert entry.parameters() == [("where", ""), ("city", "City"), ("tags", ""), ("label", "")]
