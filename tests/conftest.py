"""Shared fixtures: one real MiniLM encoder (ONNX export cached across runs) and the default router."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from skillswitch.config import MiniLMEncoderConfig, default_config
from skillswitch.router import Router
from skillswitch.router.encoders import Encoder, build_encoder
from tests.support.chat_app import chat_app
from tests.support.servers import serve

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"
# Exports and embeddings persist between runs here (gitignored), so a second run starts warm.
TEST_CACHE = REPO / ".cache" / "test"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the openai and mcp SDKs' loop)."""
    return "asyncio"


@pytest.fixture(scope="module")
def upstream_app() -> FastAPI:
    return chat_app()


@pytest.fixture(scope="module")
def upstream(upstream_app: FastAPI) -> Iterator[str]:
    """A real OpenAI-compatible server on loopback (tests/support/chat_app.py): its /v1 URL."""
    with serve(upstream_app) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def chat_requests(upstream_app: FastAPI, upstream: str) -> list[dict[str, Any]]:
    """The bodies the upstream received, in order (append-only)."""
    requests: list[dict[str, Any]] = upstream_app.state.requests
    return requests


@pytest.fixture(scope="session")
def cache_root() -> Path:
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return TEST_CACHE


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight Llama/Qwen2/BERT model folders (tests/support/tiny_models.py)."""
    from tests.support.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tool_format_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models whose templates write Llama 3's and Mistral's tool calls
    (tests/support/tiny_models.py)."""
    from tests.support.tiny_models import build_tool_format_models

    return build_tool_format_models(tmp_path_factory.mktemp("tool-format-models"))


@pytest.fixture(scope="session")
def minilm(cache_root: Path) -> Encoder:
    return build_encoder(MiniLMEncoderConfig(), cache_root)


@pytest.fixture(scope="session")
def default_router(cache_root: Path) -> Router:
    return Router.from_config(default_config(), cache_dir=cache_root)


@pytest.fixture(scope="session")
def clinc_file() -> Path:
    path = SHARED_EVAL / "clinc150" / "data_full.json"
    if not path.is_file():
        pytest.skip("../shared/eval/clinc150 is not present")
    return path


@pytest.fixture
def cli_env(cache_root: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env["SKILLSWITCH_CACHE_DIR"] = str(cache_root)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["COLUMNS"] = "200"
    return env
