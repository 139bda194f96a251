"""A worker's static map from its Config: the configured routes, then the Django site's own."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..config.static import StaticRoute, root_problems
from .django import django_routes


class StaticSetupError(Exception):
    """A configured root is missing or unusable: the site cannot start."""


@dataclass
class StaticPlan:
    routes: list[StaticRoute] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        return [f"static {route}" + (f" (from {route.origin})" if route.origin else "") for route in self.routes]


def static_plan(config: Config, mount: str = "", django: bool = True) -> StaticPlan:
    """The routes this site serves: its own, and Django's where it set no route at that prefix.

    Call after the app has loaded (Django's settings are the site's own only then).
    """
    problems = root_problems(config.static)
    if problems:
        raise StaticSetupError("; ".join(problems))
    plan = StaticPlan(routes=list(config.static))
    if django:
        routes, plan.warnings = django_routes(config.static_django, mount)
        taken = {route.prefix for route in plan.routes}
        plan.routes[:0] = [route for route in routes if route.prefix not in taken]
    return plan


def build_static_map(config: Config, plan: StaticPlan) -> object | None:
    """The StaticMap the connections consult, or None when nothing is mapped (zero cost)."""
    if not plan.routes:
        return None
    from .serve import StaticMap

    try:
        return StaticMap(plan.routes, config.static_cache_control, config.static_follow_symlinks)
    except RuntimeError as exc:  # auth = "django" without a Django site
        raise StaticSetupError(str(exc)) from None
