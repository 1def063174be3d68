"""Experts that answer requests: the ``Expert`` protocol, the OpenAI-compatible chat expert and
the ``TestExpert``/``FunctionExpert`` fakes for users' tests. The dispatcher, recruitment and
aggregator build on these (issue "Experts, Symbolic-MoE recruitment, dispatch and aggregation")."""

from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.dispatch import (
    Attempt,
    BreakerPolicy,
    CircuitBreaker,
    Dispatch,
    Dispatcher,
    ExpertResult,
    RetryPolicy,
)
from skillswitch.agents.fakes import FunctionExpert, TestExpert
from skillswitch.agents.messages import Message, Prices, TextDelta, Usage, parse_messages
from skillswitch.agents.openai_chat import OpenAIChatExpert
from skillswitch.agents.sampling import SamplingSettings, requested_sampling

__all__ = [
    "Attempt",
    "BreakerPolicy",
    "CircuitBreaker",
    "Dispatch",
    "Dispatcher",
    "Expert",
    "ExpertReply",
    "ExpertResult",
    "FunctionExpert",
    "Message",
    "OpenAIChatExpert",
    "Prices",
    "RetryPolicy",
    "SamplingSettings",
    "TestExpert",
    "TextDelta",
    "Usage",
    "parse_messages",
    "requested_sampling",
]
