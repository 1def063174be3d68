"""skillswitch: route LLM requests by skill to specialist experts and MCP tools.

>>> from skillswitch import Router, default_config  # doctest: +SKIP
>>> router = Router.from_config(default_config())  # doctest: +SKIP
>>> router.route("convert 5 miles to km").skill_names  # doctest: +SKIP
('unit_conversion',)
"""

from importlib.metadata import PackageNotFoundError, version

from skillswitch.config import Config, config_json_schema, default_config, load_config
from skillswitch.exceptions import (
    ArtifactError,
    ConfigError,
    DatasetError,
    EncoderError,
    EncoderHTTPError,
    MissingDependencyError,
    RequestError,
    SkillSwitchError,
)
from skillswitch.router import Router, RoutingDecision, SkillScore
from skillswitch.router.encoders import Encoder

try:
    __version__ = version("skillswitch")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "ArtifactError",
    "Config",
    "ConfigError",
    "DatasetError",
    "Encoder",
    "EncoderError",
    "EncoderHTTPError",
    "MissingDependencyError",
    "RequestError",
    "Router",
    "RoutingDecision",
    "SkillScore",
    "SkillSwitchError",
    "__version__",
    "config_json_schema",
    "default_config",
    "load_config",
]
