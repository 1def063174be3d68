"""LangChain for skillswitch, on langchain-core alone (pip install 'skillswitch[langchain]').

- ``SkillSwitchChatModel``: a LangChain chat model over a ``Switch`` (invoke, stream, batch,
  sync and async); the route's trace in ``response_metadata["skillswitch"]``.
- ``skillswitch_tool`` / ``skillswitch_tools``: LangChain tools as skillswitch tools, for the
  tool loop of a ``ToolCallingExpert``.

>>> from skillswitch.integrations.langchain import SkillSwitchChatModel  # doctest: +SKIP
>>> SkillSwitchChatModel(switch=switch).invoke("convert 5 miles to km").content  # doctest: +SKIP
"""

from skillswitch.integrations.langchain._require import MissingLangChainError

# isort: split

from skillswitch.integrations.langchain.chat_model import SkillSwitchChatModel
from skillswitch.integrations.langchain.messages import to_skillswitch_messages
from skillswitch.integrations.langchain.tools import (
    LangChainTool,
    skillswitch_tool,
    skillswitch_tools,
)

__all__ = [
    "LangChainTool",
    "MissingLangChainError",
    "SkillSwitchChatModel",
    "skillswitch_tool",
    "skillswitch_tools",
    "to_skillswitch_messages",
]
