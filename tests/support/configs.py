"""The embedded default config as text, and its skills-and-router part (before its experts and
tools), for tests that add experts or tools of their own."""

from __future__ import annotations

from importlib import resources

DEFAULT = resources.files("skillswitch.config").joinpath("default.yaml").read_text("utf-8")
EXPERTS_MARKER = "# --- experts and tools of the default config"
DEFAULT_SKILLS = DEFAULT.split(EXPERTS_MARKER)[0]
