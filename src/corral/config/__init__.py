"""Configuration: one declaration per setting, loaded from flags and corral.toml."""

from .plan import Plan, load_plan
from .problems import ConfigError
from .settings import SETTINGS, Config
from .sites import Middleware, Mount, SiteConfig, route

__all__ = ["Config", "ConfigError", "Middleware", "Mount", "Plan", "SETTINGS", "SiteConfig", "load_plan", "route"]
