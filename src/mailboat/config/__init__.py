"""Configuration: the TOML file of SPEC "Configuration", validated once into frozen models."""

from mailboat.config.load import ConfigError, default_config, load_config
from mailboat.config.schema import Config

__all__ = ["Config", "ConfigError", "default_config", "load_config"]
