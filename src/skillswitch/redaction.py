"""Secrets never leave in logs, traces or errors.

Every secret skillswitch is given (API keys read by ``config.environment.api_key``, keys passed
to experts, servers and ``create_app``, MCP servers' secret-looking environment values) is
registered here. From then on:

- every log record, of any logger, is redacted when it is made (a log record factory,
  installed with the first secret), so no handler ever sees the secret;
- traces (``Trace.to_dict``), OpenAI-shaped error bodies and the CLI's error lines pass through
  ``redact``.

An upstream that echoes the key it was sent (some error pages do) therefore cannot leak it
through skillswitch. Secrets shorter than ``MIN_SECRET_LENGTH`` are not registered: replacing
every "abc" in every log line would hide more than it protects.

>>> register_secret("sk-doc-0123456789")
>>> redact("upstream said: invalid key sk-doc-0123456789")
'upstream said: invalid key [redacted]'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "redact",
    "redact_json",
    "register_secret",
    "secret_looking",
]

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


class _Registry:
    """The process's secrets, longest first (a secret inside another goes with it), and each
    as it appears inside a JSON string."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: tuple[str, ...] = ()
        self.in_json: tuple[bytes, ...] = ()
        self.factory_installed = False


_REGISTRY = _Registry()


def register_secret(value: str | None) -> None:
    """Redact ``value`` from now on (ignored when None or shorter than MIN_SECRET_LENGTH)."""
    if value is None or len(value.strip()) < MIN_SECRET_LENGTH:
        return
    with _REGISTRY.lock:
        if value in _REGISTRY.secrets:
            return
        secrets = tuple(sorted({*_REGISTRY.secrets, value}, key=len, reverse=True))
        _REGISTRY.in_json = tuple(_in_json(secret) for secret in secrets)  # before: readers
        _REGISTRY.secrets = secrets  # that see the new secret find it in JSON too
        if not _REGISTRY.factory_installed:
            _install_log_redaction()
            _REGISTRY.factory_installed = True


def secret_looking(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``*_KEY``, ``*TOKEN*``,
    ``*PASSWORD*``...)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _REGISTRY.secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with secrets redacted in every string; the
    value itself when it holds no registered secret."""
    if not _REGISTRY.secrets:
        return value
    try:
        # One C call to find that nothing holds a secret (the usual case) instead of a walk in
        # Python: a trace per request, ~5% of skillswitch serve's CPU per request.
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):
        return _redacted(value)
    if not any(secret in text for secret in _REGISTRY.in_json):
        return value
    return _redacted(value)


def _in_json(secret: str) -> bytes:
    """``secret`` as it reads inside any JSON string that holds it (JSON escapes character by
    character); the text itself when it cannot be encoded, which no JSON text then holds."""
    try:
        return orjson.dumps(secret)[1:-1]
    except TypeError:  # a lone surrogate
        return secret.encode("utf-8", "surrogatepass")


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _install_log_redaction() -> None:
    """Wrap the log record factory: records whose message holds a secret get the redacted
    message (and no args), whatever logger or handler they go to."""
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not _REGISTRY.secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format: logging reports it as usual, later
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if redact(str(exc)) != str(exc):
                # The traceback would print the secret: keep the type, drop the value.
                record.exc_info = None
                record.msg = f"{record.msg} ({type(exc).__name__}: {redact(str(exc))})"
        return record

    logging.setLogRecordFactory(redacting_factory)
