"""skillswitch: route LLM requests by skill to specialist experts and MCP tools.

>>> from skillswitch import Router, Switch, default_config  # doctest: +SKIP
>>> router = Router.from_config(default_config())  # doctest: +SKIP
>>> router.route("convert 5 miles to km").skill_names  # doctest: +SKIP
('unit_conversion',)
"""

from importlib.metadata import PackageNotFoundError, version

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
    SkillSwitchError,
    UnknownExpertError,
)
from skillswitch.router import Router, RoutingDecision, SkillScore
from skillswitch.router.encoders import Encoder
from skillswitch.switch import ExpertSpec, Switch
from skillswitch.trace import Answer, Trace

try:
    __version__ = version("skillswitch")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

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
