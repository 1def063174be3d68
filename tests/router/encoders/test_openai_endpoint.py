from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError, EncoderError, EncoderHTTPError
from skillswitch.router import Router
from skillswitch.router.encoders import Encoder, OpenAIEmbeddingEncoder
from tests.support.embeddings_app import embeddings_app
from tests.support.servers import serve


@pytest.fixture(scope="module")
def endpoint(minilm: Encoder) -> Iterator[str]:
    with serve(embeddings_app(minilm, api_key="sk-test")) as url:
        yield f"{url}/v1"


def test_remote_embeddings_equal_local_ones(endpoint: str, minilm: Encoder) -> None:
    encoder = OpenAIEmbeddingEncoder(endpoint, "minilm", api_key="sk-test", batch_size=3)
    texts = ["convert 5 miles to km", "hi", "who painted the mona lisa", "what is 2+2", "bye"]
    remote = encoder.encode(texts)  # two batches, each returned out of order
    assert np.allclose(remote, minilm.encode(texts), atol=1e-5)
    assert encoder.identity == f"openai:{endpoint}:minilm"


def test_router_over_an_endpoint_routes_like_the_local_encoder(
    endpoint: str, default_router: Router, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMBED_KEY", "sk-test")
    config = parse_config(
        "skills:\n"
        "  - {name: math, description: sums, examples: [what is 2+2, compute 15% of 80]}\n"
        "  - {name: translation, description: languages, examples: [translate hi into french]}\n"
        "router:\n"
        f"  encoder: {{kind: openai, base_url: '{endpoint}', model: minilm, api_key_env: EMBED_KEY}}\n"
    )
    router = Router.from_config(config, cache_dir=tmp_path)
    assert router.route("what is 3 times 7").skill_names[0] == "math"
    assert router.route("say thanks in german").skill_names[0] == "translation"


def test_http_errors_keep_status_and_body(endpoint: str) -> None:
    encoder = OpenAIEmbeddingEncoder(endpoint, "fail-503", api_key="sk-test", max_retries=0)
    with pytest.raises(EncoderHTTPError) as caught:
        encoder.encode(["x"])
    assert caught.value.status == 503
    assert "injected failure" in caught.value.body
    wrong_key = OpenAIEmbeddingEncoder(endpoint, "minilm", api_key="nope", max_retries=0)
    with pytest.raises(EncoderHTTPError) as caught:
        wrong_key.encode(["x"])
    assert caught.value.status == 401


def test_wrong_row_count_is_an_error(endpoint: str) -> None:
    encoder = OpenAIEmbeddingEncoder(endpoint, "short", api_key="sk-test")
    with pytest.raises(EncoderError, match="returned 1 embeddings for 2 inputs"):
        encoder.encode(["a", "b"])


def test_unreachable_endpoint_is_an_encoder_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens here
    encoder = OpenAIEmbeddingEncoder(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout_s=5)
    with pytest.raises(EncoderError, match="cannot reach"):
        encoder.encode(["x"])


def test_unset_key_variable_is_reported_with_its_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    config = parse_config(
        "skills: [{name: a, description: d, examples: [x]}]\n"
        "router:\n  encoder: {kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: NO_SUCH_KEY}\n"
    )
    with pytest.raises(ConfigError, match=r"router\.encoder\.api_key_env.*NO_SUCH_KEY"):
        Router.from_config(config, cache_dir=tmp_path)
