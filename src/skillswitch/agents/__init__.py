"""Experts that answer requests: the ``Expert`` protocol, the OpenAI-compatible chat expert and
the ``TestExpert``/``FunctionExpert`` fakes for users' tests. The dispatcher, recruitment and
aggregator build on these (issue "Experts, Symbolic-MoE recruitment, dispatch and aggregation")."""

from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.fakes import FunctionExpert, TestExpert
from skillswitch.agents.messages import Message, Prices, TextDelta, Usage, parse_messages
from skillswitch.agents.openai_chat import OpenAIChatExpert, SamplingSettings

__all__ = [
    "Expert",
    "ExpertReply",
    "FunctionExpert",
    "Message",
    "OpenAIChatExpert",
    "Prices",
    "SamplingSettings",
    "TestExpert",
    "TextDelta",
    "Usage",
    "parse_messages",
]
