"""Configuration: one declaration per setting, loaded from flags and corral.toml."""

from .settings import SETTINGS, Config

__all__ = ["Config", "SETTINGS"]
