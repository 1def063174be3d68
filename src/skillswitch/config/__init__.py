"""Configuration: YAML files validated by pydantic models, and the embedded default."""

from skillswitch.config.loading import (
    config_json_schema,
    default_config,
    load_config,
    parse_config,
)
from skillswitch.config.models import (
    Config,
    DispatchConfig,
    ExemplarClassifierConfig,
    ExpertConfig,
    MCPServerConfig,
    MiniLMEncoderConfig,
    OpenAIEncoderConfig,
    OutOfScopeConfig,
    RouterConfig,
    SkillConfig,
    ThresholdObjective,
    ToolExpertConfig,
    ToolsConfig,
    TrainedClassifierConfig,
)

__all__ = [
    "Config",
    "DispatchConfig",
    "ExemplarClassifierConfig",
    "ExpertConfig",
    "MCPServerConfig",
    "MiniLMEncoderConfig",
    "OpenAIEncoderConfig",
    "OutOfScopeConfig",
    "RouterConfig",
    "SkillConfig",
    "ThresholdObjective",
    "ToolExpertConfig",
    "ToolsConfig",
    "TrainedClassifierConfig",
    "config_json_schema",
    "default_config",
    "load_config",
    "parse_config",
]
