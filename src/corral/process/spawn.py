"""Starting one worker process: fork (the usual way) or exec of another interpreter.

A site with its own virtualenv runs under that environment's Python, which may
even be another version, so its workers are started with posix_spawn of
`<venv>/bin/python -m corral.process.child`; the spec travels as JSON through a
pipe and the sockets by inheritance.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .. import install_command
from ..config import Config
from ..config.sites import Middleware, Mount, SiteConfig
from ..config.static import StaticRoute
from ..server.spec import WorkerSpec


def fork_and_run(run: Callable[[], int], close_in_child: list[socket.socket], what: str = "Worker") -> int:
    """Fork; the child closes the parent's sockets, runs `run` and exits with its status.

    Returns the child's pid in the parent. The child never returns into the caller's
    code (os._exit), the parent's signal wake-up socket is not the child's, and the
    child gets SIGTERM when the parent dies (lifeline.py).
    """
    parent = os.getpid()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while threads run; ours (a file watcher, the metrics
        # server) hold no lock the child needs.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        from .lifeline import die_with_parent  # ctypes: loaded by each child, never by the master

        signal.set_wakeup_fd(-1)
        for sock in close_in_child:
            sock.close()
        # A parent that died before we asked to follow it leaves nobody to serve for.
        status = run() if die_with_parent(parent) else 0
    except BaseException:
        logging.getLogger("corral.error").exception("%s crashed", what)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return 0  # unreachable


def fork_worker(spec: WorkerSpec, close_in_child: list[socket.socket]) -> int:
    """Fork and run a worker in the child; returns the child's pid in the parent."""

    def run() -> int:
        from ..server.worker import run_worker  # the server stack loads in the worker only

        return run_worker(spec)

    return fork_and_run(run, close_in_child)


class VirtualenvError(Exception):
    pass


_has_corral: set[str] = set()  # interpreters known to import corral (a failure is asked again next time)


def venv_python(virtualenv: str) -> str:
    """The virtualenv's interpreter, after checking it exists and can import Corral."""
    python = os.path.join(virtualenv, "bin", "python")
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise VirtualenvError(f"virtualenv {virtualenv!r} has no bin/python")
    if python not in _has_corral:
        import subprocess  # only sites with a virtualenv need it: not loaded into every master

        probe = subprocess.run(
            [python, "-c", "import corral.process.child"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            _has_corral.add(python)
    if python not in _has_corral:
        raise VirtualenvError(
            f"Corral is not installed in virtualenv {virtualenv} (install it there: {install_command(python)})"
        )
    return python


def exec_worker(spec: WorkerSpec, close_in_child: list[socket.socket]) -> int:
    """Start a worker under the site's virtualenv interpreter; returns its pid."""
    assert spec.site is not None and spec.site.virtualenv
    python = venv_python(spec.site.virtualenv)
    inherited = [s.fileno() for s in spec.sockets] + [spec.channel.fileno()] + [s.fileno() for s in spec.handoff_send]
    if spec.handoff_receive is not None:
        inherited.append(spec.handoff_receive.fileno())
    payload = json.dumps(encode_spec(spec)).encode()
    read_end, write_end = os.pipe()
    inherited.append(read_end)
    for fd in inherited:
        os.set_inheritable(fd, True)
    env = dict(os.environ)
    env["CORRAL_SPEC_FD"] = str(read_end)
    env["CORRAL_MASTER_PID"] = str(os.getpid())  # for the child's die_with_parent()
    try:
        pid = os.posix_spawn(python, [python, "-m", "corral.process.child"], env)
    finally:
        os.close(read_end)
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(payload)
    return pid


def encode_spec(spec: WorkerSpec) -> dict[str, Any]:
    return {
        "config": asdict(spec.config),
        "sockets": [(s.fileno(), s.family) for s in spec.sockets],
        "channel": spec.channel.fileno(),
        "index": spec.index,
        "site": encode_site(spec.site) if spec.site else None,
        "site_index": spec.site_index,
        "sites": [encode_site(s) for s in spec.sites],
        "handoff_send": [s.fileno() for s in spec.handoff_send],
        "handoff_receive": spec.handoff_receive.fileno() if spec.handoff_receive else None,
        # The PEM text goes through the spec's pipe, never a file (see server/tls.py).
        "tls": asdict(spec.tls) if spec.tls is not None else None,
        "proxy_fds": sorted(spec.proxy_fds),
    }


def decode_spec(data: dict[str, Any]) -> WorkerSpec:
    tls = None
    if data.get("tls") is not None:
        from ..server.tls import TLSMaterial

        tls = TLSMaterial(**data["tls"])
    return WorkerSpec(
        config=_config(data["config"]),
        sockets=[socket.socket(fileno=fd) for fd, _family in data["sockets"]],
        channel=socket.socket(fileno=data["channel"]),
        index=data["index"],
        site=decode_site(data["site"]) if data["site"] else None,
        site_index=data["site_index"],
        sites=tuple(decode_site(s) for s in data["sites"]),
        handoff_send=[socket.socket(fileno=fd) for fd in data["handoff_send"]],
        handoff_receive=socket.socket(fileno=data["handoff_receive"]) if data["handoff_receive"] is not None else None,
        tls=tls,
        proxy_fds=frozenset(data["proxy_fds"]),
    )


def _config(values: dict[str, Any]) -> Config:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    fields["static"] = tuple(StaticRoute.from_dict(route) for route in fields.get("static", ()))
    return Config(**fields)


def encode_site(site: SiteConfig) -> dict[str, Any]:
    return {
        "name": site.name,
        "config": asdict(site.config),
        "hosts": list(site.hosts),
        "default": site.default,
        "mount": site.mount,
        "mounts": [[m.prefix, m.app, m.auth, list(m.auth_groups), m.auth_allow_http] for m in site.mounts],
        "middleware": [[m.use, dict(m.options)] for m in site.middleware],
        "virtualenv": site.virtualenv,
        "user": site.user,
        "group": site.group,
    }


def decode_site(data: dict[str, Any]) -> SiteConfig:
    return SiteConfig(
        name=data["name"],
        config=_config(data["config"]),
        hosts=tuple(data["hosts"]),
        default=data["default"],
        mount=data["mount"],
        mounts=tuple(Mount(p, app, auth, tuple(groups), http) for p, app, auth, groups, http in data["mounts"]),
        middleware=tuple(Middleware(use, options) for use, options in data["middleware"]),
        virtualenv=data["virtualenv"],
        user=data["user"],
        group=data["group"],
    )
