"""Real HTTP servers on loopback for tests: uvicorn in a thread, ephemeral port, clean stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


@contextmanager
def serve(app: Any, *, lifespan: Literal["on", "off"] = "off") -> Iterator[str]:
    """Run an ASGI app on 127.0.0.1 and yield its base URL until the block ends.

    ``lifespan="on"`` for apps whose shutdown matters (``create_app`` closes its switch there,
    in the server's event loop, where the experts' connections live)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",  # injected failures are expected here; no log noise
        lifespan=lifespan,
        timeout_graceful_shutdown=1,  # a deliberately stalled handler must not hold shutdown
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()

    def wait_started() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.01)

    waiter = threading.Thread(target=wait_started)
    waiter.start()
    waiter.join(timeout=30)
    if not server.started:
        raise RuntimeError("test server did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
