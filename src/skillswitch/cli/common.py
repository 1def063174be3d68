"""What the commands share: the --config option, errors as one line and an exit status,
logging, loading a config or a router, a progress bar."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from skillswitch.console import interrupted
from skillswitch.exceptions import (
    ArtifactError,
    ConfigError,
    DatasetError,
    MissingDependencyError,
    RequestError,
    SkillSwitchError,
    UnknownExpertError,
)
from skillswitch.redaction import redact

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from skillswitch.config import Config
    from skillswitch.router import Router


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $SKILLSWITCH_CONFIG, else the embedded default config).",
        envvar="SKILLSWITCH_CONFIG",
        dir_okay=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")

_USER_ERRORS = (
    ConfigError,
    DatasetError,
    RequestError,
    ArtifactError,
    MissingDependencyError,
    UnknownExpertError,
)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def reports_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Print skillswitch errors as one message (no traceback) and exit with a status code."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            if interrupted(exc):  # a bogus error from work that Ctrl-C broke off
                _stop_interrupted()
            if isinstance(exc, _USER_ERRORS):
                stderr().print(f"[bold red]error:[/] {escape(str(exc))}")
                raise typer.Exit(2) from None
            if isinstance(exc, SkillSwitchError):
                stderr().print(f"[bold red]failed:[/] {escape(str(exc))}")
                raise typer.Exit(1) from None
            if isinstance(exc, FileNotFoundError | PermissionError | NotADirectoryError):
                # A path given that cannot be read or written ("--out /proc/nope").
                where = f": {exc.filename}" if exc.filename else ""
                stderr().print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{where}")
                raise typer.Exit(2) from None
            raise
        except KeyboardInterrupt:
            _stop_interrupted()
        if interrupted(None):  # Ctrl-C came where Python could only swallow it
            _stop_interrupted()
        return result

    return wrapper


def _stop_interrupted() -> NoReturn:
    stderr().print("interrupted")
    raise typer.Exit(130) from None


def escape(text: str) -> str:
    """``text`` for rich markup, with registered secrets redacted."""
    from rich.markup import escape

    return escape(redact(text))


def load_config_or_default(config_path: Path | None) -> Config:
    from skillswitch.config import default_config, load_config

    return load_config(config_path) if config_path is not None else default_config()


def load_router(config_path: Path | None) -> Router:
    from skillswitch.router import Router

    return Router.from_config(load_config_or_default(config_path))


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr(), show_path=False, show_time=False)],
    )
    for noisy in ("httpx", "openai", "httpcore", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_bar() -> Progress:
    """A transient progress bar on stderr (stdout stays clean for --json users)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        transient=True,
    )


@contextlib.contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback: a bar per stage on a terminal, a log line
    every 10% of a stage otherwise (a log file or CI)."""
    log = logging.getLogger("skillswitch.fit")
    with progress_bar() as bar:
        tasks: dict[str, Any] = {}
        logged: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if not bar.console.is_terminal:
                tenth = 10 * done // max(total, 1)
                if tenth > logged.get(stage, -1):
                    logged[stage] = tenth
                    log.info("%s: %d/%d", stage, done, total)

        yield report


class Spinner:
    """A spinner on stderr for work without a known length."""

    def __init__(self, message: str) -> None:
        from rich.status import Status

        self._status = Status(message, console=stderr())

    def __enter__(self) -> None:
        self._status.start()

    def __exit__(self, *_: object) -> None:
        self._status.stop()
