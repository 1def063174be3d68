"""Imported first by the package: without langchain-core, the error names the extra to install
instead of a bare ``No module named 'langchain_core'`` from deep inside."""

from skillswitch.exceptions import MissingDependencyError

__all__ = ["MissingLangChainError"]


class MissingLangChainError(MissingDependencyError, ImportError):
    """langchain-core is not installed (also an ``ImportError``, as for any missing module)."""


try:
    import langchain_core  # noqa: F401
except ImportError as exc:
    raise MissingLangChainError(
        "skillswitch.integrations.langchain", "langchain", "langchain_core"
    ) from exc
