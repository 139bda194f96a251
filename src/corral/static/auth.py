"""Django's user database guarding static files and mounted apps (auth = "django").

The mod_wsgi `WSGIAuthUserScript` story without Apache: HTTP Basic credentials are checked
with Django's own `django.contrib.auth.handlers.modwsgi.check_password` and
`groups_for_user`, in the site's worker, with the site's settings (Django is already set
up there: the site's app loaded first). A check queries the database, so for static files
it runs on a small thread pool, never on the event loop; for a mount it runs where the
mounted app runs.

Answers: no or malformed credentials, an unknown or inactive user, or a wrong password get
401 with `WWW-Authenticate` (an inactive user is not told apart from an unknown one, as
mod_wsgi does not: that would confirm the account exists); a right password outside the
required groups gets 403; plain HTTP gets 403 without a challenge unless the route allows
it (a browser must not be asked to send a password in clear text). Positive answers are
remembered for CACHE_SECONDS, keyed by a salted hash of the credentials (never the
password itself), at most CACHE_LIMIT of them.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("corral.error")

CACHE_SECONDS = 5.0  # a changed password or removed group takes effect within this
CACHE_LIMIT = 1024  # remembered positive answers per guard; beyond it the oldest half goes
_POOL_THREADS = 2  # concurrent database checks for static files, per worker

OK, UNAUTHORIZED, FORBIDDEN = 200, 401, 403
_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="corral-auth")
    return _pool


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` value, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = binascii.a2b_base64(token.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, colon, password = text.partition(":")
    if not colon or not user:
        return None
    return user, password


class DjangoGuard:
    """One guarded prefix: who may pass (a user, optionally in one of `groups`)."""

    def __init__(self, where: str, groups: Iterable[str], allow_http: bool) -> None:
        self.where = where
        self.groups = frozenset(groups)
        self.allow_http = allow_http
        self.realm = f'Basic realm="{where}", charset="UTF-8"'
        self._salt = os.urandom(16)
        self._passed: dict[bytes, float] = {}
        self._check_password, self._groups_for_user = _django_functions(where)

    def precheck(self, environ: dict[str, Any]) -> tuple[int, tuple[str, str] | None]:
        """What can be decided without the database: (status, credentials); OK means cached."""
        if environ.get("wsgi.url_scheme") != "https" and not self.allow_http:
            log.warning("%s: refused a request from %s over plain HTTP (guarded files need HTTPS)",
                        self.where, environ.get("REMOTE_ADDR", "?"))
            return FORBIDDEN, None
        credentials = parse_basic(environ.get("HTTP_AUTHORIZATION"))
        if credentials is None:
            return UNAUTHORIZED, None
        expires = self._passed.get(self._key(*credentials))
        if expires is not None and expires > time.monotonic():
            return OK, credentials
        return 0, credentials

    def check(self, environ: dict[str, Any], user: str, password: str) -> int:
        """Ask Django (database queries: call from a thread, or where the app runs)."""
        try:
            valid = self._check_password(environ, user, password)
            if not valid:
                why = "wrong password" if valid is False else "unknown or inactive user"
                log.warning("%s: refused user %r from %s: %s", self.where, user, environ.get("REMOTE_ADDR", "?"), why)
                return UNAUTHORIZED
            if self.groups:
                names = {g.decode() if isinstance(g, bytes) else str(g) for g in self._groups_for_user(environ, user)}
                if not names & self.groups:
                    log.warning("%s: refused user %r from %s: not in %s", self.where, user,
                                environ.get("REMOTE_ADDR", "?"), ", ".join(sorted(self.groups)))
                    return FORBIDDEN
        except Exception:
            log.exception("%s: checking user %r against Django's users failed", self.where, user)
            return FORBIDDEN
        self._remember(self._key(user, password))
        return OK

    def _key(self, user: str, password: str) -> bytes:
        return hashlib.sha256(self._salt + user.encode("utf-8", "surrogatepass") + b"\0"
                              + password.encode("utf-8", "surrogatepass")).digest()

    def _remember(self, key: bytes) -> None:
        passed = self._passed
        if len(passed) >= CACHE_LIMIT:
            for old in list(passed)[: CACHE_LIMIT // 2]:  # dicts keep insertion order: the oldest
                passed.pop(old, None)  # (another thread may have dropped it already)
        passed.pop(key, None)
        passed[key] = time.monotonic() + CACHE_SECONDS


def _django_functions(where: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    try:
        from django.conf import settings

        configured = settings.configured
    except ImportError:
        configured = False
    if not configured:
        raise RuntimeError(f'{where}: auth = "django" needs a Django site (settings = "..."), and none is loaded')
    from django.contrib.auth.handlers.modwsgi import check_password, groups_for_user

    return check_password, groups_for_user


def challenge_headers(guard: DjangoGuard, status: int) -> list[tuple[str, str]]:
    return [("WWW-Authenticate", guard.realm)] if status == UNAUTHORIZED else []


class GuardedApp:
    """WSGI middleware: a mounted app behind a DjangoGuard (checked in the app's own thread)."""

    def __init__(self, app: Callable[..., Any], guard: DjangoGuard) -> None:
        self.app = app
        self.guard = guard

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        status, credentials = self.guard.precheck(environ)
        if status == 0 and credentials is not None:
            status = self.guard.check(environ, *credentials)
        if status == OK:
            assert credentials is not None
            environ["REMOTE_USER"] = credentials[0]
            return self.app(environ, start_response)
        reason = {UNAUTHORIZED: "401 Unauthorized", FORBIDDEN: "403 Forbidden"}[status]
        body = f"{reason}\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response(reason, headers + challenge_headers(self.guard, status))
        return [body]
