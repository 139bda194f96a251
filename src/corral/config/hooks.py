"""Server hooks as configuration: which exist, where each runs, and their values.

`hooks = { post_fork = "mysite.hooks:post_fork" }` in corral.toml (top level, a
profile or, for the worker hooks, a site), or `--hooks post_fork=mysite.hooks:post_fork`
on the command line. Here the names and the `module:attr` form are checked;
importing and calling the hooks is corral/hooks.py's job, in the process each names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .problems import did_you_mean
from .values import ValueProblem, pairs_table, parse_text, shown

# Hook name -> the process it runs in. Order: the order they fire in a server's life.
HOOKS = {
    "post_fork": "worker",  # after the fork, before the app is loaded
    "when_ready": "master",  # once, when every worker accepts
    "pre_request": "worker",  # before the app is called, with the environ
    "post_request": "worker",  # after the response was handed to the socket
    "worker_exit": "worker",  # at the end of a worker's drain
    "on_reload": "master",  # when a reload (SIGHUP, corral reload) starts
}
MASTER_HOOKS = frozenset(name for name, where in HOOKS.items() if where == "master")
_SPEC_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_EXAMPLE = 'hooks = { post_fork = "mysite.hooks:post_fork" }'


def parse_hooks_table(value: object) -> dict[str, str]:
    """The TOML form: a table from hook name to `module:attr`."""
    if not isinstance(value, dict):
        raise ValueProblem(f"expected a table such as {_EXAMPLE}, got {shown(value)}")
    result: dict[str, str] = {}
    for name, spec in value.items():
        _check_name(name)
        if not isinstance(spec, str):
            raise ValueProblem(f'{name}: expected a "module:function" string, got {shown(spec)}')
        result[name] = _check_spec(name, spec)
    return result


def parse_hook_assignment(text: str) -> str:
    """The command-line form, `--hooks NAME=module:attr`."""
    name, equals, spec = parse_text(text).partition("=")
    if not equals:
        raise ValueProblem(f"expected NAME=module:function, such as post_fork=mysite.hooks:post_fork, got {text!r}")
    name = name.strip()
    _check_name(name)
    return f"{name}={_check_spec(name, spec)}"


def hooks_of(pairs: Iterable[str]) -> dict[str, str]:
    """A Config's `hooks` pairs as {name: spec}; the last of a name wins."""
    return pairs_table(pairs)


def master_hooks_in(table: Iterable[str]) -> list[str]:
    """The hooks of `table` that only the master runs (they have no place in a site)."""
    return [name for name in table if name in MASTER_HOOKS]


def _check_name(name: str) -> None:
    if name not in HOOKS:
        known = ", ".join(HOOKS)
        raise ValueProblem(f"unknown hook {name!r}{did_you_mean(name, HOOKS)}; the hooks are {known}")


def _check_spec(name: str, spec: str) -> str:
    spec = spec.strip()
    if not _SPEC_RE.match(spec):
        raise ValueProblem(f'{name}: expected "module:function" (such as "mysite.hooks:{name}"), got {spec!r}')
    return spec
