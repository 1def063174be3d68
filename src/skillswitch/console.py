"""The ``skillswitch`` console script: Ctrl-C ends a command quietly (exit 130) wherever it
lands: while the command line's modules are still loading; when the interrupt surfaces as
another error (a native extension whose initialisation it broke raises ``ImportError:
initialization failed`` caused by the ``KeyboardInterrupt``); and when Python could only swallow
it (raised inside a callback of native code, e.g. a regex run by pydantic-core, which then
reports a bogus validation error): such an interrupt is remembered, kept off stderr, and the
command stops with "interrupted" (``cli.common.reports_errors``)."""

from __future__ import annotations

import sys
from typing import Any

_swallowed: list[BaseException] = []


def main() -> None:
    default_hook = sys.unraisablehook

    def remember_interrupts(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _swallowed.append(unraisable.exc_value)
        else:
            default_hook(unraisable)

    sys.unraisablehook = remember_interrupts
    try:
        from skillswitch.cli import main as run

        run()
    except SystemExit:
        raise
    except BaseException as exc:
        if not interrupted(exc):
            raise
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


def interrupted(exc: BaseException | None) -> bool:
    """Whether Ctrl-C was swallowed somewhere, or ``exc`` is a ``KeyboardInterrupt`` or was
    raised because of one."""
    if _swallowed:
        return True
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
