"""A tool of the caller, as OpenAI clients send it, and a request that makes the loopback
upstream's ``client-tools`` model call it (tests/support/chat_app.py)."""

from __future__ import annotations

from typing import Any

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = 'what is the weather in Paris? [[get_weather {"city": "Paris"}]]'
