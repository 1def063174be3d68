"""Every error skillswitch raises, in one deliberate tree.

User mistakes (a bad config, a bad request, a bad data file) are separate from runtime failures
(an encoder endpoint that is down) so that callers can tell "fix your input" from "try again".
Servers map these classes to HTTP status codes or JSON-RPC codes; nothing here knows about either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skillswitch.redaction import redact

__all__ = [
    "ArtifactError",
    "BackendClosedError",
    "ChatTemplateError",
    "ConfigError",
    "ConfigIssue",
    "DatasetError",
    "EncoderError",
    "EncoderHTTPError",
    "ExpertCrashedError",
    "ExpertDeclinedError",
    "ExpertError",
    "ExpertHTTPError",
    "ExpertRequestError",
    "ExpertResponseError",
    "ExpertTimeoutError",
    "ExpertUnavailableError",
    "ExpertsFailedError",
    "GenerationCancelledError",
    "GrammarError",
    "MessagesRefusedError",
    "MissingDependencyError",
    "ModelFolderError",
    "ModelTooLargeError",
    "NoExpertError",
    "PromptTooLongError",
    "RequestError",
    "ResponseFormatError",
    "SkillSwitchError",
    "ToolCallingUnsupportedError",
    "ToolDeclinedError",
    "ToolServerError",
    "UnknownExpertError",
    "UnknownModelError",
    "UnknownToolError",
    "WrongModelKindError",
]

# Statuses with which an expert's endpoint refuses one request (bad or too large) while up.
REQUEST_REFUSED_STATUSES = frozenset({400, 413, 422})


class SkillSwitchError(Exception):
    """Base class of every error skillswitch raises on purpose."""


# --- user mistakes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where it is, what is there, what is wrong."""

    path: str
    """Dotted YAML path such as ``skills[3].examples`` (empty for the whole document)."""
    message: str
    """What is wrong and how to fix it."""
    location: str | None = None
    """``file:line:column`` when the YAML source is known."""

    def __str__(self) -> str:
        where = self.path or "<document>"
        prefix = f"{self.location}: " if self.location else ""
        return f"{prefix}{where}: {self.message}"


class ConfigError(SkillSwitchError):
    """The configuration is invalid. Carries every issue found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue], *, source: str | None = None) -> None:
        self.issues = tuple(issues)
        self.source = source
        options = bool(self.issues) and all(i.path.startswith("--") for i in self.issues)
        # A command-line option (--host, --port, --api-key-env) is not the config file.
        subject = "invalid command-line option" if options else "invalid config"
        header = f"{subject} {source}" if source else subject
        count = len(self.issues)
        lines = [f"{header} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))

    @classmethod
    def single(cls, path: str, message: str, *, source: str | None = None) -> ConfigError:
        return cls([ConfigIssue(path=path, message=message)], source=source)


class RequestError(SkillSwitchError):
    """A request cannot be routed as sent (empty, not text, not UTF-8...)."""


class DatasetError(SkillSwitchError):
    """A labelled data file for ``fit`` or ``eval`` is unreadable or inconsistent."""


class ArtifactError(SkillSwitchError):
    """A saved classifier artifact is missing, incomplete or from an incompatible version."""


class MissingDependencyError(SkillSwitchError):
    """An optional extra is needed for this feature; the message gives the install command."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        self.module = module
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not installed. "
            f"Install it with: pip install 'skillswitch[{extra}]'"
        )


# --- runtime failures ----------------------------------------------------------------------


class EncoderError(SkillSwitchError):
    """An encoder failed to produce embeddings."""


class EncoderHTTPError(EncoderError):
    """A remote embeddings endpoint answered with an error status."""

    def __init__(self, endpoint: str, status: int, body: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.body = body
        super().__init__(f"embeddings endpoint {endpoint} answered HTTP {status}: {body[:500]}")


class ExpertError(SkillSwitchError):
    """An expert failed to answer. ``retryable`` says whether trying again may help;
    ``expert_unwell`` whether the error says the expert is down, slow or broken (it counts
    toward the expert's circuit breaker) rather than that it refused this one request. The
    message never holds a registered secret (an upstream may quote the key it was sent)."""

    retryable = False
    expert_unwell = True

    def __init__(self, expert: str, message: str) -> None:
        self.expert = expert
        super().__init__(f"expert {expert!r}: {redact(message)}")


class ExpertHTTPError(ExpertError):
    """The expert's endpoint answered with an error status (429 and 5xx are retryable; 400,
    413 and 422 refuse the request, e.g. a prompt over the model's context, and say nothing of
    the expert's health)."""

    def __init__(
        self, expert: str, status: int, body: str, *, retry_after_s: float | None = None
    ) -> None:
        self.status = status
        self.body = redact(body)
        self.retry_after_s = retry_after_s
        self.retryable = status == 429 or status >= 500
        self.expert_unwell = status not in REQUEST_REFUSED_STATUSES
        super().__init__(expert, f"HTTP {status}: {body[:300]}")


class ExpertTimeoutError(ExpertError):
    """The expert did not answer within its timeout."""

    retryable = True

    def __init__(self, expert: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(expert, f"no answer within {timeout_s:g} s")


class ExpertUnavailableError(ExpertError):
    """The expert's endpoint cannot be reached (refused, reset, DNS)."""

    retryable = True


class ExpertResponseError(ExpertError):
    """The expert answered with something unusable (malformed JSON, no choices, a stream that
    ended before it finished)."""

    retryable = True


class ExpertRequestError(ExpertError):
    """The expert refused this request as it was sent (a prompt longer than its context, say):
    the request's problem, so it is not retried and does not count against the expert's
    health."""

    expert_unwell = False


class ExpertDeclinedError(ExpertError):
    """The expert cannot answer this request as it is put (a tool expert finds no arguments
    in it, say): not a failure of the expert, and no retry will change it. When every expert
    asked declines, the request is the caller's to rephrase or send elsewhere (HTTP 422)."""

    expert_unwell = False


class ToolDeclinedError(ExpertDeclinedError):
    """A tool expert found nothing in the request for its tool's arguments."""

    def __init__(self, expert: str, tool: str) -> None:
        self.tool = tool
        super().__init__(
            expert,
            f"the request does not give what {tool} needs; rephrase it, or send it to another "
            "model or skill",
        )


class ExpertCrashedError(ExpertError):
    """The expert raised something other than an ``ExpertError``: a bug in the expert (a
    user's own, say). It fails that expert only; the dispatcher logs the traceback."""

    def __init__(self, expert: str, exc: Exception) -> None:
        self.exception = exc
        super().__init__(expert, f"raised {type(exc).__name__}: {exc} (a bug in the expert)")


def _and(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _suggestion(name: str, known: Sequence[str], *, many: int = 1, otherwise: str) -> str:
    """ "; did you mean 'x'?" for the closest known names, else ``otherwise``."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=many, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(repr(c) for c in close)}?"
    return otherwise


class UnknownExpertError(SkillSwitchError):
    """A name that no configured expert has."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        hint = _suggestion(name, known, otherwise=f"; known experts: {known}")
        super().__init__(f"unknown expert {name!r}{hint}")


class ExpertsFailedError(ExceptionGroup[ExpertError], SkillSwitchError):
    """Every expert asked for an answer failed; ``exceptions`` holds each one's last error.

    ``trace``: when raised by ``Switch.run``/``stream``, the ``skillswitch.trace.Trace`` of
    what was tried (the route, every expert's error and attempts); else None.
    """

    trace: Any = None

    def __str__(self) -> str:
        """The message and each expert's error (an exception group says only how many there
        are: "no expert answered (2 sub-exceptions)")."""
        return f"{self.message}: {self.reasons()}"

    def reasons(self, most: int = 8) -> str:
        """Each expert's error, ``; ``-separated, at most ``most`` of them; tool experts that
        found nothing in the request for their tools are said in one ("experts 'converter' and
        'clock' found nothing in the request for builtin__units and builtin__clock; ..."), not
        the same sentence once per tool."""
        declined = [e for e in self.exceptions if isinstance(e, ToolDeclinedError)]
        shown: list[str] = []
        for error in self.exceptions:
            if not isinstance(error, ToolDeclinedError) or len(declined) == 1:
                shown.append(str(error))
            elif error is declined[0]:
                experts = _and([repr(e.expert) for e in declined])
                tools = _and(list(dict.fromkeys(e.tool for e in declined)))
                shown.append(
                    f"experts {experts} found nothing in the request for {tools}; rephrase it, "
                    "or send it to another model or skill"
                )
        text = "; ".join(shown[:most])
        if len(shown) > most:
            text += f"; and {len(shown) - most} more"
        return text


class NoExpertError(SkillSwitchError):
    """No configured expert serves the skills a request was routed to."""

    def __init__(self, skills: tuple[str, ...]) -> None:
        self.skills = skills
        shown = ", ".join(repr(s) for s in skills) or "(none)"
        super().__init__(
            f"no expert serves the skills {shown}; add an expert with those skills (or with no "
            "skills list, which serves every skill) under experts: in the config"
        )


class ResponseFormatError(SkillSwitchError):
    """The answer is not in the form the caller's ``response_format`` asks for, and nothing
    could put it in that form (no aggregator, or the aggregator could not either).

    ``trace``: the ``skillswitch.trace.Trace`` of what was tried (None when no expert was
    asked: the request was out of scope)."""

    def __init__(self, message: str, trace: Any = None) -> None:
        self.trace = trace
        super().__init__(message)


class UnknownToolError(SkillSwitchError, LookupError):
    """A tool name that the catalogue does not hold."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        listing = (
            "; list the tools (MCP tools/list, or `skillswitch tools list`)"
            if known
            else "; no tools"
        )
        hint = _suggestion(name, known, many=3, otherwise=listing)
        super().__init__(f"unknown tool {name!r}{hint}")

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


class ToolServerError(SkillSwitchError):
    """An upstream MCP server could not be started, reached, or kept alive."""

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        super().__init__(f"MCP server {server!r}: {message}")


# --- the local inference backend -----------------------------------------------------------


class ModelFolderError(SkillSwitchError):
    """A local model folder is missing, incomplete or corrupt; the message names the folder and
    what it lacks."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"model folder {path!r}: {message}")


class ModelTooLargeError(SkillSwitchError):
    """A model cannot fit in the memory budget even with every other model evicted."""

    def __init__(self, model: str, needed_bytes: int, budget_bytes: int, tier: str) -> None:
        self.model = model
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes
        super().__init__(
            f"model {model!r} needs {needed_bytes / 2**30:.2f} GiB but the {tier} budget is "
            f"{budget_bytes / 2**30:.2f} GiB; raise inference.memory.{tier}_gb, or use a smaller "
            "dtype (inference.models[].dtype: bfloat16)"
        )


class UnknownModelError(SkillSwitchError, LookupError):
    """A model name that the local registry does not hold."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        hint = _suggestion(name, known, otherwise=f"; known models: {sorted(known)}")
        super().__init__(f"unknown local model {name!r}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class GenerationCancelledError(SkillSwitchError):
    """The generation was cancelled before it finished."""


class WrongModelKindError(SkillSwitchError, ValueError):
    """A chat request to an embedding model, or the other way round."""


class ChatTemplateError(SkillSwitchError, ValueError):
    """Chat messages for a model whose folder has no chat template."""


class MessagesRefusedError(SkillSwitchError, ValueError):
    """Chat messages a model's chat template refuses to render (its own checks: roles out of
    order, say)."""


class PromptTooLongError(SkillSwitchError, ValueError):
    """A prompt with more tokens than the model has positions."""

    def __init__(self, model: str, tokens: int, limit: int) -> None:
        self.model = model
        self.tokens = tokens
        self.limit = limit
        super().__init__(
            f"the prompt is {tokens} tokens but model {model!r} takes at most {limit} positions; "
            "shorten the conversation"
        )


class GrammarError(SkillSwitchError, ValueError):
    """A requested output form (``response_format``) that constrained decoding cannot enforce:
    a schema the grammar engine cannot compile, or a model whose tokenizer cannot carry it."""


class ToolCallingUnsupportedError(SkillSwitchError, ValueError):
    """Tools were offered to a local model that cannot call them: its chat template does not
    show tools to the model, or writes calls in a format skillswitch does not read."""


class BackendClosedError(SkillSwitchError, RuntimeError):
    """The local inference backend is closed (shutting down); nothing more is accepted."""
