"""What a request's ``model`` names, parsed once at the edge: automatic routing
(``skillswitch``), one skill (``skillswitch/<skill>``), or one configured expert by name.

Precedence, for configs whose expert names look like the others: ``skillswitch`` is always
automatic routing, ``skillswitch/<skill>`` is the skill when such a skill exists, and any other
name is an expert.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from skillswitch.server.openai_errors import OpenAIError

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["AUTO_MODEL", "NO_SKILL", "SKILL_PREFIX", "Target", "TargetKind", "Targets"]

AUTO_MODEL = "skillswitch"
SKILL_PREFIX = "skillswitch/"
NO_SKILL = "-"
"""The skill of a request sent to an expert by name (routing bypassed), in headers and metrics."""
_MAX_LISTED = 12

TargetKind = Literal["auto", "skill", "expert"]


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved ``model``: ``kind`` and, for a skill or an expert, its ``name``."""

    model: str
    kind: TargetKind
    name: str | None = None

    @property
    def skill(self) -> str | None:
        return self.name if self.kind == "skill" else None

    @property
    def expert(self) -> str | None:
        return self.name if self.kind == "expert" else None


class Targets:
    """The models this server answers to, read from the switch once (when the app is built).

    Skills are listed only when some expert serves them, so that every listed model answers.
    """

    def __init__(self, switch: Switch) -> None:
        self.skills: dict[str, tuple[str, ...]] = {
            skill: tuple(switch.experts_for(skill)) for skill in switch.router.skills
        }
        self.descriptions = dict(switch.skill_descriptions)
        self.experts: tuple[str, ...] = tuple(switch.expert_names)

    def served_skills(self) -> list[str]:
        return [skill for skill, experts in self.skills.items() if experts]

    def names(self) -> list[str]:
        """Every model name, in the order of ``GET /v1/models``."""
        skills = [SKILL_PREFIX + skill for skill in self.served_skills()]
        return [AUTO_MODEL, *skills, *(e for e in self.experts if e != AUTO_MODEL)]

    def resolve(self, model: str) -> Target:
        """The target ``model`` names; 404 ``model_not_found`` with a did-you-mean otherwise."""
        if model == AUTO_MODEL:
            return Target(model, "auto")
        if model.startswith(SKILL_PREFIX):
            skill = model.removeprefix(SKILL_PREFIX)
            if self.skills.get(skill):
                return Target(model, "skill", skill)
            if skill in self.skills and model not in self.experts:
                raise OpenAIError(
                    404,
                    f"model {model!r} names the skill {skill!r}, but no expert of this server's "
                    "config serves it; use 'skillswitch' (automatic routing) or another skill "
                    "(GET /v1/models lists them)",
                    param="model",
                    code="model_not_found",
                )
        if model in self.experts:
            return Target(model, "expert", model)
        raise self._unknown(model)

    def _unknown(self, model: str) -> OpenAIError:
        names = self.names()
        close = difflib.get_close_matches(model, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
        if len(names) > _MAX_LISTED:
            shown += f" and {len(names) - _MAX_LISTED} more"
        return OpenAIError(
            404,
            f"unknown model {_clip(model)!r}{hint or '.'} This server answers to 'skillswitch' "
            f"(automatic routing), 'skillswitch/<skill>' (one skill) and expert names: {shown} "
            "(GET /v1/models lists them).",
            param="model",
            code="model_not_found",
        )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
