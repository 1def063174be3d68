from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.chat_app import chat_app
from tests.support.servers import serve


@pytest.fixture(scope="module")
def upstream_app() -> Iterator[tuple[str, Any]]:
    app = chat_app()
    with serve(app) as url:
        yield f"{url}/v1", app


@pytest.fixture(scope="module")
def upstream(upstream_app: tuple[str, Any]) -> str:
    return upstream_app[0]
