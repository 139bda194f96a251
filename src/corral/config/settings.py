"""Every setting, declared once: type, default, flag, TOML key, variable and help.

The command line (cli.py), corral.toml (config/files.py) and the CORRAL_*
environment variables (config/envvars.py) are all generated from these
declarations, so a setting cannot exist in one and not the other. A field's TOML
key is its name with `-` for `_`; its flag is `--` + that key. The worker's value
objects (http/limits.py Limits, server/context.py Timeouts) take their fields'
defaults from here too (from_setting), and carried() fills them from a Config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from ..proxy import trust
from . import hooks as hook_names
from . import values
from .static import StaticRoute, parse_django_kind, parse_static_flag

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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
    table: Callable[[Any], dict[str, str]] | None = None,
) -> Any:
    """Declare a setting.

    `site`: a [sites.NAME] table may override it for that site's workers.
    `path`: a relative value in corral.toml is resolved against the file's directory,
    so a config works the same whatever directory corral is started from.
    `table`: in corral.toml the setting is a table, read by this parser; layers merge it key
    by key, and the Config holds it as the `KEY=VALUE` pairs its repeatable flag takes.
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
        "table": table,
    }
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for multi-valued defaults")
    return field(default=default, metadata=meta)


def _parse_access_log_format(text: str) -> str:
    choice = values.parse_text(text).lower()
    if choice not in ("combined", "json"):
        raise values.ValueProblem(f"expected combined or json, got {text!r}")
    return choice


def _parse_access_log_client(text: str) -> str:
    choice = values.parse_text(text).strip().lower()
    if choice not in ("client", "peer"):
        raise values.ValueProblem(f"expected client or peer, got {text!r}")
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


CLIENT_CERT_MODES = ("none", "optional", "required")


def _parse_client_cert(text: str) -> str:
    choice = values.parse_text(text).strip().lower()
    if choice not in CLIENT_CERT_MODES:
        raise values.ValueProblem(f"expected one of {', '.join(CLIENT_CERT_MODES)}, got {text!r}")
    return choice


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
        table=values.parse_env_table,
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
        "Listen on HOST:PORT, [IPv6]:PORT or unix:PATH (repeatable); proxy:ADDRESS expects the PROXY protocol.",
        values.parse_text,
        short="-b",
        metavar="ADDRESS",
        multiple=True,
    )
    # -- TLS (docs/tls.md) ------------------------------------------------------
    certfile: str | None = setting(
        None,
        "Serve HTTPS: the PEM certificate (with its chain) for every bind; read by the master, "
        "re-read on reload.",
        values.parse_text,
        metavar="FILE",
        path=True,
    )
    keyfile: str | None = setting(
        None,
        "The PEM private key of --certfile (default: the key is in the certfile).",
        values.parse_text,
        metavar="FILE",
        path=True,
    )
    ca_certs: str | None = setting(
        None,
        "PEM file of the CA certificates that sign client certificates (with --client-cert).",
        values.parse_text,
        metavar="FILE",
        path=True,
    )
    client_cert: str = setting(
        "none",
        "Ask TLS clients for a certificate: none, optional (verified if sent) or required (mTLS).",
        _parse_client_cert,
        metavar="MODE",
    )
    # HTTP/2 (docs/http2.md): offered to TLS clients by ALPN unless switched off; cleartext
    # h2c only when asked for, since a plain port usually faces a proxy speaking HTTP/1.1.
    http2: bool = setting(
        False,
        "Accept HTTP/2 without TLS (h2c, prior knowledge) on plain listeners.",
        values.parse_bool,
    )
    no_http2_tls: bool = setting(
        False,
        "Do not offer HTTP/2 to TLS clients (ALPN then offers only http/1.1).",
        values.parse_bool,
    )
    no_h2c_upgrade: bool = setting(
        False,
        "With --http2, refuse the HTTP/1.1 'Upgrade: h2c' dance (h2c with prior knowledge only).",
        values.parse_bool,
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
    socket_mode: str = setting(
        "0660",
        "Permissions of the unix: socket files Corral creates, in octal (660, 0660 or 0o660).",
        values.parse_file_mode,
        metavar="MODE",
    )
    socket_owner: str | None = setting(
        None,
        "Give the unix: socket files Corral creates to USER[:GROUP] (names or ids; needs root).",
        values.parse_owner,
        metavar="USER[:GROUP]",
    )
    reuse_port: bool = setting(
        False,
        "Set SO_REUSEPORT on TCP listeners, so several independent servers can share one port.",
        values.parse_bool,
    )
    # In corral.toml hooks is a table (hooks = { post_fork = "mysite.hooks:post_fork" }), like env.
    hooks: tuple[str, ...] = setting(
        (),
        "Call your function at a server event: NAME=module:function, NAME one of "
        f"{', '.join(hook_names.HOOKS)} (repeatable; see docs/operations.md).",
        hook_names.parse_hook_assignment,
        metavar="NAME=MODULE:FUNCTION",
        multiple=True,
        site=True,
        table=hook_names.parse_hooks_table,
    )
    max_connections: int = setting(
        1000, "Open connections per worker; more get 503.", values.parse_positive_int, metavar="N", site=True
    )
    # -- timeouts (seconds) ------------------------------------------------------
    # An idle keep-alive connection costs a socket and a little memory; nginx keeps 75 s, most proxies less.
    keepalive_timeout: float = setting(
        5.0, "Close idle keep-alive connections after this many seconds.", values.parse_seconds, metavar="S", site=True
    )
    # Slowloris protection: a whole request head must arrive within this.
    header_timeout: float = setting(
        10.0, "Time allowed for a request head to arrive (slowloris).", values.parse_seconds, metavar="S", site=True
    )
    # A body that stalls longer between two reads is given up on (408).
    body_timeout: float = setting(
        30.0, "Time a request body may stall between reads.", values.parse_seconds, metavar="S", site=True
    )
    # A client that stops reading a response cannot hold the worker.
    send_timeout: float = setting(
        60.0, "Time a response may wait on a client that stopped reading.", values.parse_seconds, metavar="S", site=True
    )
    graceful_timeout: float = setting(
        30.0, "On stop, time in-flight requests get to finish.", values.parse_seconds, metavar="S", site=True
    )
    shutdown_delay: float = setting(
        0.0,
        "On SIGTERM, fail /readyz at once but keep accepting and serving for S seconds before draining "
        "(a load balancer's time to stop sending); 0: drain at once.",
        values.parse_nonnegative_seconds,
        metavar="S",
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
    # Longer targets are almost always scanners or broken clients; 8 KiB matches nginx.
    max_request_line: int = setting(
        8192, "Longest request target (414 beyond).", values.parse_size, metavar="BYTES", site=True
    )
    # Sum of all header lines; nginx allows 4 x 8 KiB, gunicorn 100 x 8 KiB.
    max_header_size: int = setting(
        65536, "Largest total size of request header fields (431).", values.parse_size, metavar="BYTES", site=True
    )
    # Many more than any browser sends; bounds per-request allocations.
    max_headers: int = setting(
        100, "Most request header fields (431 beyond).", values.parse_positive_int, metavar="N", site=True
    )
    # A safe default where gunicorn and granian have none; raise it for upload sites.
    max_body_size: int = setting(
        100 * 1024 * 1024,
        "Largest request body (413 beyond); accepts 64k, 10M, 1G.",
        values.parse_size,
        metavar="BYTES",
        site=True,
    )
    # Bodies up to this size stay in memory (cost RAM); larger ones spill to a temporary file (cost disk).
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
    access_log_client: str = setting(
        "client",
        "Which address the access log prints: client (REMOTE_ADDR as a trusted proxy's headers "
        "rewrote it) or peer (the address that connected).",
        _parse_access_log_client,
        metavar="WHICH",
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
    proxy_protocol: bool = setting(
        False,
        "Every listener expects a PROXY protocol v1 or v2 header from a trusted proxy before HTTP "
        "(for one listener only: --bind proxy:HOST:PORT).",
        values.parse_bool,
    )

    def replace(self, **changes: Any) -> Config:
        from dataclasses import replace

        return replace(self, **changes)


SETTINGS = tuple(fields(Config))
BY_NAME = {f.name: f for f in SETTINGS}


def toml_key(name: str) -> str:
    return name.replace("_", "-")


_Carrier = TypeVar("_Carrier", bound="DataclassInstance")


def from_setting(name: str) -> Any:
    """A field of a worker-side value object that carries setting `name`.

    Its default is the declared one, so `Limits()` is the declared defaults and a default is
    written only here; `carried()` fills the object from a Config. The object stays a plain
    frozen dataclass: the hot path reads its attributes directly.
    """
    return field(default=BY_NAME[name].default, metadata={"setting": name})


def carried(cls: type[_Carrier], config: Config) -> _Carrier:
    """`cls` (whose fields are all from_setting()) filled from `config`."""
    return cls(**{f.name: getattr(config, f.metadata["setting"]) for f in fields(cls)})


def carried_settings(cls: type[DataclassInstance]) -> dict[str, str]:
    """`cls`'s field names and the settings they carry."""
    return {f.name: f.metadata["setting"] for f in fields(cls)}
