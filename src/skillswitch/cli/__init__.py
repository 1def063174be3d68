"""The ``skillswitch`` command line.

Every command turns skillswitch's own errors into one readable line on stderr and a non-zero
exit (2 for a mistake in the input, 1 for a failure at run time); tracebacks are for bugs only.
Heavy modules are imported inside commands so ``skillswitch route`` starts fast. One module per
command group; importing them registers their commands on ``app``.
"""

from __future__ import annotations

from skillswitch.cli import ask, basics, config_commands, evaluate, fit, serving, tools
from skillswitch.cli.app import app

__all__ = ["app", "main"]

_COMMANDS = (ask, basics, config_commands, evaluate, fit, serving, tools)


def main() -> None:
    """Console-script entry point."""
    app()
