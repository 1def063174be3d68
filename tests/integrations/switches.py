"""A switch over real OpenAI-compatible experts for the integration tests (the loopback upstream of
tests/support/chat_app.py: ``echo`` answers ``echo: <last message>`` word by word, ``fail-503``
fails), with the default config's skills and router (the real encoder)."""

from __future__ import annotations

from pathlib import Path

from skillswitch.config import parse_config
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS

TRANSLATE = "translate good morning into French"
MATH = "what is 15% of 80?"

# One expert per skill it is tested on (max_experts 1), so that each route is predictable;
# calculator has prices (1 per prompt token, 2 per completion token) so that cost shows.
EXPERTS = """
experts:
  - {{name: calculator, base_url: '{u}', model: echo, skills: [math, unit_conversion],
      prices: {{input_per_million: 1000000, output_per_million: 2000000}}}}
  - {{name: polyglot, base_url: '{u}', model: echo, skills: [translation]}}
  - {{name: broken, base_url: '{u}', model: fail-503, skills: [summarization]}}
  - {{name: generalist, base_url: '{u}', model: echo}}
dispatch: {{max_experts: 1, retry_attempts: 1, breaker_failures: 1000}}
"""


def config_text(upstream: str) -> str:
    return DEFAULT_SKILLS + EXPERTS.format(u=upstream)


def build_switch(upstream: str, cache_root: Path) -> Switch:
    return Switch.from_config(parse_config(config_text(upstream)), cache_dir=cache_root)
