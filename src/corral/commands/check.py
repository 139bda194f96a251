"""`corral check`: resolve everything, load each site's app in a child, serve nothing.

The `nginx -t` of Corral: prints the resolved plan (config file, profile, server
settings, the site table) and exits non-zero on any problem. Each site's app is
imported in its own child process with that site's environment, directory and
sys.path, so the apps' import side effects never meet each other or this
process. A site with a virtualenv is loaded by that virtualenv's interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from typing import Any

from .. import install_command, settings_guard
from ..config import Config, Plan
from ..config.envvars import variable
from ..config.settings import SETTINGS, toml_key
from ..config.sites import SiteConfig, implicit_site
from ..hooks import MasterHooks, WorkerHooks, spec_of
from ..loading import AppLoadError
from ..middleware.compose import apply_middleware, load_site_apps
from ..process.spawn import decode_site, encode_site
from ..server.environment import app_environment, prepare_process
from ..server.listeners import BindError, parse_bind

# An app whose import hangs (a database at import time, say) must not hang a deploy script.
IMPORT_DEADLINE = 120
# The child's exit status: loaded; failed; Corral missing in the site's virtualenv; loaded, with a warning.
LOADED, FAILED, NOT_INSTALLED, WARNED = 0, 1, 3, 4


def check(plan: Plan | Config) -> int:
    if isinstance(plan, Config):
        plan = Plan(server=plan, sites=(implicit_site(plan),))
    problems: list[str] = []
    for text in plan.server.bind:
        try:
            parse_bind(text)
        except BindError as exc:
            problems.append(str(exc))
    _print_settings(plan)
    env_keys: dict[str, list[str]] = {}
    for site in plan.sites:
        try:
            env_keys[site.name] = sorted(app_environment(site.config))
        except AppLoadError as exc:
            problems.append(f"site {site.name!r}: {exc}")
            env_keys[site.name] = []
        problems += [f"site {site.name!r}: {problem}" for problem in _account_problems(site)]
    _print_sites(plan, env_keys)
    warnings = settings_guard.startup_warnings(plan, os.environ)
    for warning in warnings:
        sys.stderr.write(f"corral: warning: {warning}\n")
    sys.stdout.flush()  # before forking, or the children would print our buffer again
    sys.stderr.flush()
    results = _load_sites(plan)
    problems += _check_master_hooks(plan.server)
    for problem in problems:
        sys.stderr.write(f"corral: error: {problem}\n")
    ok = all(code in (LOADED, WARNED) for code in results.values()) and not problems
    warned = len(warnings) + sum(code == WARNED for code in results.values())
    if not ok:
        print("FAILED")
    else:
        print(f"OK, with {warned} warning(s) (above)" if warned else "OK")
    return 0 if ok else 1


def load_apps(plan: Plan) -> bool:
    """Load every site's app as `check` does (each in a child), printing what happened; True if all loaded."""
    sys.stdout.flush()  # before forking, or the children would print our buffer again
    sys.stderr.flush()
    return all(code in (LOADED, WARNED) for code in _load_sites(plan).values())


def _load_sites(plan: Plan) -> dict[str, int]:
    exposure = settings_guard.exposure(plan.profile, _binds(plan.server.bind))
    return {site.name: _load_site(site, plan.multi_site, exposure) for site in plan.sites}


def _binds(texts: tuple[str, ...]) -> list[settings_guard.Bind]:
    found = []
    for text in texts:
        try:
            address = parse_bind(text)
        except BindError:
            continue  # reported as a problem already
        found.append((int(address.family), address.host, text))
    return found


# -- printing ------------------------------------------------------------------------


def _print_settings(plan: Plan) -> None:
    source = plan.source or "none"
    print(f"Config file: {source}" + (f" (profile {plan.profile})" if plan.profile else ""))
    print("Server settings:" if plan.multi_site else "Resolved configuration:")
    for f in SETTINGS:
        if plan.multi_site and f.metadata["group"] == "app":
            continue  # each site has its own; shown in the site table
        value = getattr(plan.server, f.name)
        shown = ", ".join(map(str, value)) if isinstance(value, tuple) else value
        origin = f"  (from {variable(f.name)})" if f.name in plan.from_environment else ""
        print(f"  {toml_key(f.name):20} {shown if shown not in (None, '') else '-'}{origin}")


def _print_sites(plan: Plan, env_keys: dict[str, list[str]]) -> None:
    header = ("SITE", "HOSTS", "MOUNT", "APP", "MOUNTS", "PROCS x THREADS", "ENV KEYS", "VENV", "USER")
    rows = [header]
    for site in plan.sites:
        hosts = list(site.hosts) + (["(default)"] if site.default and plan.multi_site else [])
        rows.append(
            (
                site.name,
                ", ".join(hosts) or "(any)",
                site.mount or "/",
                site.app or (f"settings {site.settings}" if site.settings else "(welcome page)"),
                ", ".join(f"{m.prefix} -> {m.app}" for m in site.mounts) or "-",
                f"{site.processes} x {site.threads}",
                ", ".join(env_keys.get(site.name, [])) or "-",
                site.virtualenv or "-",
                ":".join(part for part in (site.user, site.group) if part) or "-",
            )
        )
    print(f"Sites ({len(plan.sites)}):")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for site in plan.sites:
        for number, middleware in enumerate(site.middleware, 1):
            options = ", ".join(f"{key}={value!r}" for key, value in middleware.options.items())
            print(f"  {site.name}: middleware {number}: {middleware.use}({options})")
        overrides = sorted(name for name in site.overrides if name in _SERVER_NAMES)
        if plan.multi_site and overrides:
            shown = ", ".join(f"{toml_key(name)}={getattr(site.config, name)}" for name in overrides)
            print(f"  {site.name}: overrides {shown}")


_SERVER_NAMES = frozenset(f.name for f in SETTINGS if f.metadata["group"] != "app")


def _account_problems(site: SiteConfig) -> list[str]:
    """The site's user and group must exist on this machine (they are switched to as root)."""
    import grp
    import pwd

    problems = []
    for kind, name, lookup in (("user", site.user, pwd.getpwnam), ("group", site.group, grp.getgrnam)):
        if name is None or name.isdigit():
            continue
        try:
            lookup(name)
        except KeyError:
            problems.append(f"{kind} {name!r} does not exist on this machine")
    return problems


def _check_master_hooks(server: Config) -> list[str]:
    """when_ready and on_reload import in the master: here, after the sites were loaded."""
    try:
        hooks = MasterHooks.load(server)
    except AppLoadError as exc:
        if exc.user_traceback:
            sys.stderr.write(exc.user_traceback)
        return [str(exc)]
    for name in hooks.loaded:
        print(f"Server: loaded {name} hook {spec_of(server, name)} (runs in the master)")
    return []


# -- loading each site in a child --------------------------------------------------


def _load_site(site: SiteConfig, isolated: bool, exposure: str | None) -> int:
    """Load the site in a child; its exit status (LOADED, WARNED, or a failure)."""
    spec = _spec(site, isolated, exposure)
    if site.virtualenv:
        return _load_in_virtualenv(site, spec)
    pid = os.fork()
    if pid == 0:
        signal.alarm(IMPORT_DEADLINE)  # the default action ends the child
        os._exit(load_site_spec(spec))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGALRM:
        sys.stderr.write(f"corral: error: site {site.name!r}: importing the app took over {IMPORT_DEADLINE}s\n")
    return code


def _load_in_virtualenv(site: SiteConfig, spec: dict[str, Any]) -> int:
    venv = site.virtualenv or ""
    python = os.path.join(venv, "bin", "python")
    if not os.path.isdir(venv):
        return _fail(site, f"virtualenv {venv} does not exist")
    if not os.access(python, os.X_OK):
        return _fail(site, f"virtualenv {venv} has no bin/python")
    script = (
        "import json, sys\n"
        "try:\n"
        "    from corral.commands.check import load_site_spec\n"
        "except ImportError:\n"
        "    sys.exit(3)\n"
        "sys.exit(load_site_spec(json.loads(sys.argv[1])))\n"
    )
    try:
        result = subprocess.run([python, "-c", script, json.dumps(spec)], timeout=IMPORT_DEADLINE, check=False)
    except subprocess.TimeoutExpired:
        return _fail(site, f"importing the app took over {IMPORT_DEADLINE}s")
    if result.returncode == NOT_INSTALLED:
        hint = install_command(python)
        return _fail(site, f"Corral is not installed in virtualenv {venv} (install it there: {hint})")
    return result.returncode


def _fail(site: SiteConfig, message: str) -> int:
    sys.stderr.write(f"corral: error: site {site.name!r}: {message}\n")
    return FAILED


def _spec(site: SiteConfig, isolated: bool, exposure: str | None) -> dict[str, Any]:
    """What the child needs, as JSON-able data (it may be another interpreter's child)."""
    return {"isolated": isolated, "site": encode_site(site), "exposure": exposure}


def load_site_spec(spec: dict[str, Any]) -> int:
    """In the child: set up the site's process as a worker would, import everything; 0 when fine."""
    site = decode_site(spec["site"])
    try:
        dropped = None
        if spec["isolated"]:
            dropped = os.environ.pop("DJANGO_SETTINGS_MODULE", None)  # a site never inherits the master's settings
        source = settings_guard.told_by(site.config.settings, prepare_process(site.config))
        hooks = WorkerHooks.load(site.config)  # imported as a worker does: before the app
        app, mounted = settings_guard.guarded_load(lambda: _load_everything(site), source)
        settings_guard.import_urlconf()  # what the first request would import: urls.py and its views
        loaded = [f"app {_describe(app)}"]
        loaded += [f"{prefix} -> {_describe(mount)}" for prefix, mount in mounted.items()]
        if site.middleware:
            loaded.append(f"{len(site.middleware)} middleware")
        loaded += [f"{name} hook {spec_of(site.config, name)}" for name in hooks.loaded]
        print(f"Site {site.name}: loaded {', '.join(loaded)} (Python {sys.version.split()[0]})")
        _print_static(site)
        sys.stdout.flush()
        warnings = [settings_guard.debug_warning(spec.get("exposure")), settings_guard.not_inherited_warning(dropped)]
        for warning in filter(None, warnings):
            sys.stderr.write(f"corral: warning: site {site.name!r}: {warning}\n")
        sys.stderr.flush()
        return WARNED if any(warnings) else LOADED
    except Exception as exc:
        error = exc if isinstance(exc, AppLoadError) else None
        if error is None:  # not one of ours: show where it came from
            traceback.print_exc()
            error = AppLoadError(f"loading the site raised {type(exc).__name__}: {exc}")
        if error.user_traceback:
            sys.stderr.write(error.user_traceback)
        sys.stderr.write(f"corral: error: site {site.name!r}: {error}\n")
        sys.stderr.flush()
        return FAILED


def _load_everything(site: SiteConfig) -> tuple[Any, dict[str, Any]]:
    app, mounted = load_site_apps(site)
    apply_middleware(app, site)
    return app, mounted


def _print_static(site: SiteConfig) -> None:
    """The files this site's workers will serve themselves, as they would find them (after the app)."""
    from ..static.setup import StaticSetupError, build_static_map, static_plan

    try:
        plan = static_plan(site.config, site.mount)
        build_static_map(site.config, plan)
    except StaticSetupError as exc:
        raise AppLoadError(str(exc)) from None
    for line in plan.describe():
        print(f"Site {site.name}: {line}")
    for warning in plan.warnings:
        print(f"Site {site.name}: warning: {warning}")


def _describe(app: Any) -> str:
    return f"{getattr(app, '__module__', '?')}.{getattr(app, '__qualname__', type(app).__name__)}"
