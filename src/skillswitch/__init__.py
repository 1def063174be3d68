"""skillswitch: route LLM requests by skill to specialist experts and MCP tools.

>>> from skillswitch import Router, Switch, default_config  # doctest: +SKIP
>>> router = Router.from_config(default_config())  # doctest: +SKIP
>>> router.route("convert 5 miles to km").skill_names  # doctest: +SKIP
('unit_conversion',)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skillswitch.agents import Expert, ExpertReply, FunctionExpert, Message, TestExpert
    from skillswitch.config import Config, config_json_schema, default_config, load_config
    from skillswitch.exceptions import (
        ArtifactError,
        ConfigError,
        DatasetError,
        EncoderError,
        EncoderHTTPError,
        ExpertError,
        ExpertHTTPError,
        ExpertsFailedError,
        MissingDependencyError,
        NoExpertError,
        RequestError,
        ResponseFormatError,
        SkillSwitchError,
        UnknownExpertError,
    )
    from skillswitch.router import Router, RoutingDecision, SkillScore
    from skillswitch.router.encoders import Encoder
    from skillswitch.switch import ExpertSpec, Switch
    from skillswitch.trace import Answer, Trace

# Public names are imported on first use (PEP 562): `import skillswitch` stays cheap, and the
# command line can answer Ctrl-C while its heavy imports load (skillswitch.console).
_EXPORTS: dict[str, str] = {
    "Expert": "skillswitch.agents",
    "ExpertReply": "skillswitch.agents",
    "FunctionExpert": "skillswitch.agents",
    "Message": "skillswitch.agents",
    "TestExpert": "skillswitch.agents",
    "Config": "skillswitch.config",
    "config_json_schema": "skillswitch.config",
    "default_config": "skillswitch.config",
    "load_config": "skillswitch.config",
    "ArtifactError": "skillswitch.exceptions",
    "ConfigError": "skillswitch.exceptions",
    "DatasetError": "skillswitch.exceptions",
    "EncoderError": "skillswitch.exceptions",
    "EncoderHTTPError": "skillswitch.exceptions",
    "ExpertError": "skillswitch.exceptions",
    "ExpertHTTPError": "skillswitch.exceptions",
    "ExpertsFailedError": "skillswitch.exceptions",
    "MissingDependencyError": "skillswitch.exceptions",
    "NoExpertError": "skillswitch.exceptions",
    "RequestError": "skillswitch.exceptions",
    "ResponseFormatError": "skillswitch.exceptions",
    "SkillSwitchError": "skillswitch.exceptions",
    "UnknownExpertError": "skillswitch.exceptions",
    "Router": "skillswitch.router",
    "RoutingDecision": "skillswitch.router",
    "SkillScore": "skillswitch.router",
    "Encoder": "skillswitch.router.encoders",
    "ExpertSpec": "skillswitch.switch",
    "Switch": "skillswitch.switch",
    "Answer": "skillswitch.trace",
    "Trace": "skillswitch.trace",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("skillswitch")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0"
        globals()[name] = value
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skillswitch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})


__all__ = [
    "Answer",
    "ArtifactError",
    "Config",
    "ConfigError",
    "DatasetError",
    "Encoder",
    "EncoderError",
    "EncoderHTTPError",
    "Expert",
    "ExpertError",
    "ExpertHTTPError",
    "ExpertReply",
    "ExpertSpec",
    "ExpertsFailedError",
    "FunctionExpert",
    "Message",
    "MissingDependencyError",
    "NoExpertError",
    "RequestError",
    "ResponseFormatError",
    "Router",
    "RoutingDecision",
    "SkillScore",
    "SkillSwitchError",
    "Switch",
    "TestExpert",
    "Trace",
    "UnknownExpertError",
    "__version__",
    "config_json_schema",
    "default_config",
    "load_config",
]
