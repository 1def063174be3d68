"""Where a server may listen, and how it stops: shared by ``serve`` and ``serve-models``."""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from skillswitch.exceptions import ConfigError

__all__ = ["check_exposure", "check_listen", "is_loopback", "quiet_second_sigterm"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond this machine without an API key (DESIGN: loopback by default)."""
    if api_key is None and not is_loopback(host):
        raise ConfigError.single(
            "--host",
            f"{host!r} is not a loopback address, and serving models beyond this machine "
            "needs an API key: export one in a variable and pass --api-key-env VARIABLE, or "
            "bind 127.0.0.1",
        )


def check_listen(host: str, port: int) -> None:
    """Refuse, before anything starts, an address this machine cannot listen on: a port in use
    (uvicorn would log an error and exit 3 after starting up), a host that is no address here.
    Bound as uvicorn binds (``SO_REUSEADDR``), so a port in TIME_WAIT passes."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
    except (socket.gaierror, UnicodeError):
        raise ConfigError.single(
            "--host", f"{host!r} is neither an address nor a name this machine resolves"
        ) from None
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError.single(
                    "--port",
                    f"{host}:{port} is in use (another server is listening there); stop it or "
                    "pass another --port",
                ) from None
            raise ConfigError.single(
                "--host",
                f"cannot listen on {host}:{port} ({exc.strerror}); bind an address of this "
                "machine, e.g. 127.0.0.1",
            ) from None


@contextmanager
def quiet_second_sigterm() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM and then raises the signal again for the
    handler it replaced; the default handler would kill the process before the backend is
    closed. Ignoring that second delivery lets the server close its services and return."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
