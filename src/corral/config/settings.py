"""Every setting, declared once: type, default, flag, TOML key and help.

The command line (cli.py) and corral.toml (config/files.py) are both generated
from these declarations, so a setting cannot exist in one and not the other.
A field's TOML key is its name with `-` for `_`; its flag is `--` + that key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..proxy import trust
from . import values
from .static import StaticRoute, parse_django_kind, parse_static_flag

_DEFAULT_BIND = ("127.0.0.1:8000",)


def setting(
    default: Any,
    help: str,
    parse: Callable[[Any], Any],
    *,
    short: str | None = None,
    metavar: str | None = None,
    multiple: bool = False,
    cli: bool = True,
    group: str = "server",
    site: bool = False,
    path: bool = False,
) -> Any:
    """Declare a setting.

    `site`: a [sites.NAME] table may override it for that site's workers.
    `path`: a relative value in corral.toml is resolved against the file's directory,
    so a config works the same whatever directory corral is started from.
    """
    meta = {
        "help": help,
        "parse": parse,
        "short": short,
        "metavar": metavar,
        "multiple": multiple,
        "cli": cli,
        "group": group,
        "site": site,
        "path": path,
    }
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for multi-valued defaults")
    return field(default=default, metadata=meta)


def _parse_access_log_format(text: str) -> str:
    choice = values.parse_text(text).lower()
    if choice not in ("combined", "json"):
        raise values.ValueProblem(f"expected combined or json, got {text!r}")
    return choice


def _parse_metrics_bind(text: str) -> str:
    from ..observe.httpd import parse_address  # the one parser of HOST:PORT the metrics server uses

    try:
        parse_address(values.parse_text(text))
    except ValueError as exc:
        raise values.ValueProblem(str(exc)) from None
    return text


def _parse_trusted_proxy(text: str) -> str:
    try:
        return trust.parse_trusted_proxy(text)
    except ValueError as exc:
        raise values.ValueProblem(str(exc)) from None


PROXY_HEADER_KINDS = ("forwarded", "x-forwarded", "both", "none")


def _parse_proxy_headers(text: str) -> str:
    choice = values.parse_text(text).strip().lower()
    if choice not in PROXY_HEADER_KINDS:
        raise values.ValueProblem(f"expected one of {', '.join(PROXY_HEADER_KINDS)}, got {text!r}")
    return choice


@dataclass(frozen=True)
class Config:
    # -- what to serve ---------------------------------------------------------
    app: str | None = setting(
        None,
        "WSGI app: pkg.mod:name, pkg.mod (attribute application or app), pkg.mod.name "
        "(Django's WSGI_APPLICATION form) or pkg.mod:factory(). Default: a welcome page.",
        values.parse_text,
        group="app",
    )
    settings: str | None = setting(
        None,
        "Django settings module; sets DJANGO_SETTINGS_MODULE before the app is imported. "
        "Without an APP, the app is the settings' WSGI_APPLICATION.",
        values.parse_text,
        metavar="MODULE",
        group="app",
    )
    chdir: str | None = setting(
        None,
        "Change to this directory before loading the app.",
        values.parse_text,
        metavar="DIR",
        group="app",
        path=True,
    )
    pythonpath: tuple[str, ...] = setting(
        (),
        "Add a directory to sys.path (repeatable).",
        values.parse_text,
        metavar="DIR",
        multiple=True,
        group="app",
        path=True,
    )
    # In corral.toml env is a table (env = { KEY = "value" }); config/files.py turns it into these pairs.
    env: tuple[str, ...] = setting(
        (),
        "Set an environment variable for the app (repeatable).",
        values.parse_env_assignment,
        metavar="KEY=VALUE",
        multiple=True,
        group="app",
    )
    env_file: str | None = setting(
        None,
        "Read environment variables from a dotenv file.",
        values.parse_text,
        metavar="FILE",
        group="app",
        path=True,
    )
    # -- processes ---------------------------------------------------------------
    bind: tuple[str, ...] = setting(
        _DEFAULT_BIND,
        "Listen on HOST:PORT, [IPv6]:PORT or unix:PATH (repeatable).",
        values.parse_text,
        short="-b",
        metavar="ADDRESS",
        multiple=True,
    )
    workers: int = setting(1, "Worker processes.", values.parse_positive_int, short="-w", metavar="N")
    threads: int = setting(
        1,
        "App threads per worker; 1 calls the app on the event loop (fastest).",
        values.parse_positive_int,
        short="-t",
        metavar="N",
        site=True,
    )
    backlog: int = setting(
        2048, "Listen backlog: connections the kernel queues before accept.", values.parse_positive_int, metavar="N"
    )
    max_connections: int = setting(
        1000, "Open connections per worker; more get 503.", values.parse_positive_int, metavar="N", site=True
    )
    # -- timeouts (seconds) ------------------------------------------------------
    keepalive_timeout: float = setting(
        5.0, "Close idle keep-alive connections after this many seconds.", values.parse_seconds, metavar="S", site=True
    )
    header_timeout: float = setting(
        10.0, "Time allowed for a request head to arrive (slowloris).", values.parse_seconds, metavar="S", site=True
    )
    body_timeout: float = setting(
        30.0, "Time a request body may stall between reads.", values.parse_seconds, metavar="S", site=True
    )
    send_timeout: float = setting(
        60.0, "Time a response may wait on a client that stopped reading.", values.parse_seconds, metavar="S", site=True
    )
    graceful_timeout: float = setting(
        30.0, "On stop, time in-flight requests get to finish.", values.parse_seconds, metavar="S", site=True
    )
    timeout: float = setting(
        30.0,
        "A request running longer is reported with its stack and answered 504; its worker is replaced.",
        values.parse_seconds,
        metavar="S",
        site=True,
    )
    # -- recycling ---------------------------------------------------------------
    max_requests: int = setting(
        0,
        "Recycle a worker gracefully after this many requests (0: never).",
        values.parse_count,
        metavar="N",
        site=True,
    )
    max_requests_jitter: int = setting(
        0,
        "Spread recycling: each worker's limit is max-requests +/- a random amount up to this.",
        values.parse_count,
        metavar="N",
        site=True,
    )
    max_worker_memory: int = setting(
        0,
        "Recycle a worker gracefully when its RSS passes this many MiB (0: never).",
        values.parse_count,
        metavar="MB",
        site=True,
    )
    control_socket: str | None = setting(
        None,
        "Unix socket for corral status/reload/stop (default: corral-<bind>.sock in the run directory).",
        values.parse_text,
        metavar="PATH",
        path=True,
    )
    # -- limits ------------------------------------------------------------------
    max_request_line: int = setting(
        8192, "Longest request target (414 beyond).", values.parse_size, metavar="BYTES", site=True
    )
    max_header_size: int = setting(
        65536, "Largest total size of request header fields (431).", values.parse_size, metavar="BYTES", site=True
    )
    max_headers: int = setting(
        100, "Most request header fields (431 beyond).", values.parse_positive_int, metavar="N", site=True
    )
    max_body_size: int = setting(
        100 * 1024 * 1024,
        "Largest request body (413 beyond); accepts 64k, 10M, 1G.",
        values.parse_size,
        metavar="BYTES",
        site=True,
    )
    body_buffer_size: int = setting(
        1024 * 1024,
        "Request bodies larger than this are spooled to a temporary file.",
        values.parse_size,
        metavar="BYTES",
        site=True,
    )
    # -- static files (docs/static.md) -------------------------------------------------
    # In corral.toml static is a table (static = { "/static" = "dir" }); config/static.py parses it.
    static: tuple[StaticRoute, ...] = setting(
        (),
        "Serve files under URL_PREFIX from DIRECTORY on the event loop, without the app (repeatable).",
        parse_static_flag,
        metavar="URL_PREFIX=DIRECTORY",
        multiple=True,
        site=True,
    )
    static_django: tuple[str, ...] = setting(
        ("static",),
        "For a Django site: serve STATIC_URL from STATIC_ROOT (static) and MEDIA_URL from MEDIA_ROOT "
        "(media), read from its settings; none for neither (repeatable).",
        parse_django_kind,
        metavar="KIND",
        multiple=True,
        site=True,
    )
    static_cache_control: str = setting(
        "public, max-age=60",
        "Cache-Control of static files whose names carry no content hash ('' for none); "
        "hashed names (app.3f2a1b9c8d7e.css) get max-age=31536000, immutable.",
        values.parse_text,
        metavar="VALUE",
        site=True,
    )
    static_follow_symlinks: bool = setting(
        False,
        "Serve symlinks under a static root that lead outside it (refused by default).",
        values.parse_bool,
        site=True,
    )
    # -- logging -----------------------------------------------------------------
    access_log: str | None = setting(
        None,
        "Write an access log to FILE ('-' for stdout). Off by default.",
        values.parse_text,
        metavar="FILE",
        site=True,
        path=True,
    )
    access_log_format: str = setting(
        "combined",
        "Access log format: combined (Apache's) or json (one object per line).",
        _parse_access_log_format,
        metavar="FORMAT",
        site=True,
    )
    log_level: str = setting(
        "info", "Error log level: debug, info, warning, error, critical.", values.parse_log_level, metavar="LEVEL"
    )
    # -- observability -----------------------------------------------------------
    metrics_bind: str | None = setting(
        None,
        "Serve Prometheus /metrics and the /healthz, /readyz probes on HOST:PORT. Off by default.",
        _parse_metrics_bind,
        metavar="HOST:PORT",
    )

    # -- proxies -------------------------------------------------------------------
    trusted_proxies: tuple[str, ...] = setting(
        trust.DEFAULT_TRUSTED,
        "A peer allowed to say who the client is (Forwarded, X-Forwarded-*, PROXY protocol): "
        "an address, a CIDR network, or unix for Unix-socket peers (repeatable).",
        _parse_trusted_proxy,
        metavar="ADDRESS",
        multiple=True,
    )
    proxy_headers: str = setting(
        "both",
        "Which headers a trusted proxy speaks: forwarded (RFC 7239), x-forwarded (X-Forwarded-*), "
        "both (Forwarded wins where they disagree) or none.",
        _parse_proxy_headers,
        metavar="KIND",
    )

    def replace(self, **changes: Any) -> Config:
        from dataclasses import replace

        return replace(self, **changes)


SETTINGS = tuple(fields(Config))
BY_NAME = {f.name: f for f in SETTINGS}


def toml_key(name: str) -> str:
    return name.replace("_", "-")
