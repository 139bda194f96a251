"""The static map of a real Django project: STATIC_ROOT and MEDIA_ROOT from its own settings,
and its user database guarding files and a mounted app (auth = "django").

The project comes from `startproject` (tests/django_project.py), with a settings module
that sets STATIC_ROOT and MEDIA_URL/MEDIA_ROOT, `collectstatic` run on it, and users made
through manage.py: alice (group staff), bob (group other), carol (staff, inactive).
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from django_project import create_django_project
from helpers import APPS, Server, read_to_eof
from http_client import Reply, request
from tls_pki import PKI

pytest.importorskip("django")

PASSWORD = "corral-static-pw-7"
SETTINGS = '''
    from .settings import *  # noqa: F403
    from .settings import BASE_DIR

    STATIC_ROOT = BASE_DIR / "collected"
    MEDIA_URL = "media/"
    MEDIA_ROOT = BASE_DIR / "uploads"
'''
USERS = f'''
from django.contrib.auth.models import Group, User
staff = Group.objects.create(name="staff")
other = Group.objects.create(name="other")
for name, group, active in (("alice", staff, True), ("bob", other, True), ("carol", staff, False)):
    user = User.objects.create_user(name, password="{PASSWORD}", is_active=active)
    user.groups.add(group)
'''


def manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "manage.py", *args, "--settings", "mysite.settings_files"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = create_django_project(tmp_path_factory.mktemp("django") / "site")
    (root / "mysite" / "settings_files.py").write_text(textwrap.dedent(SETTINGS).lstrip())
    (root / "mysite" / "settings_uncollected.py").write_text(
        "from .settings_files import *  # noqa: F403\nfrom .settings import BASE_DIR\n\n"
        'STATIC_ROOT = BASE_DIR / "never-collected"\n'
    )
    (root / "never-collected").mkdir()
    manage(root, "collectstatic", "--noinput", "-v0")
    manage(root, "shell", "-c", USERS)
    (root / "uploads").mkdir()
    (root / "uploads" / "avatar.txt").write_text("an upload\n")
    (root / "private").mkdir()
    (root / "private" / "report.txt").write_text("for staff only\n")
    return root


def get(server: Server, path: str, *headers: str) -> Reply:
    """A GET for the project's ALLOWED_HOSTS, with header lines ("Authorization: Basic ...")."""
    return request(server.port, path, headers={"Host": "localhost", **dict(h.split(": ", 1) for h in headers)})


def basic(user: str, password: str = PASSWORD) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run_corral(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "corral", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


# -- STATIC_ROOT and MEDIA_ROOT from the site's settings ----------------------------


def test_static_root_is_served_from_the_event_loop(serve, project: Path) -> None:
    server = serve("--settings", "mysite.settings_files", "--chdir", str(project))
    assert server.wait_for(rf"Serving static /static -> {project / 'collected'} \(from STATIC_ROOT\)", 5)
    status, headers, body = get(server, "/static/admin/css/base.css")
    assert status == 200 and body == (project / "collected" / "admin" / "css" / "base.css").read_bytes()
    assert headers["content-type"] == "text/css; charset=utf-8" and "etag" in headers  # ours, not Django's
    status, _, _ = get(server, "/media/avatar.txt")
    assert status == 404  # MEDIA only when asked for: the app (which has no such URL) answers


def test_media_only_when_asked(serve, project: Path) -> None:
    server = serve("--settings", "mysite.settings_files", "--chdir", str(project),
                   "--static-django", "static", "--static-django", "media")
    status, _, body = get(server, "/media/avatar.txt")
    assert status == 200 and body == b"an upload\n"
    assert get(server, "/static/admin/css/base.css")[0] == 200


def test_none_leaves_static_urls_to_the_app(serve, project: Path) -> None:
    server = serve("--settings", "mysite.settings_files", "--chdir", str(project), "--static-django", "none")
    assert get(server, "/static/admin/css/base.css")[0] == 404  # Django itself serves no static files
    assert "Serving static" not in server.log()


def test_corral_check_offers_the_django_routes(project: Path) -> None:
    done = run_corral("check", "--settings", "mysite.settings_files", "--static-django", "media",
                      "--static-django", "static", cwd=project)
    assert done.returncode == 0, done.stderr
    assert f"static /static -> {project / 'collected'} (from STATIC_ROOT)" in done.stdout
    assert f"static /media -> {project / 'uploads'} (from MEDIA_ROOT)" in done.stdout


def test_a_static_root_never_collected_warns(serve, project: Path) -> None:
    done = run_corral("check", "--settings", "mysite.settings_uncollected", cwd=project)
    assert done.returncode == 0, done.stderr
    assert f"warning: STATIC_ROOT {project / 'never-collected'} is empty: run manage.py collectstatic" in done.stdout
    server = serve("--settings", "mysite.settings_uncollected", "--chdir", str(project))
    assert server.wait_for(r"\[WARNING\] STATIC_ROOT .*never-collected is empty: run manage.py collectstatic", 5)


def test_the_default_settings_have_no_static_root(serve, project: Path) -> None:
    server = serve("--settings", "mysite.settings", "--chdir", str(project))
    assert server.wait_for(r"\[WARNING\] STATIC_ROOT is not set: static files under /static/ are left to the app", 5)


# -- Django's users guarding files ------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(project: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("guarded")
    (home / "corral.toml").write_text(
        f'chdir = "{project}"\nsettings = "mysite.settings_files"\n'
        "[static]\n"
        f'"/private" = {{ root = "{project / "private"}", auth = "django", auth-groups = ["staff"], '
        "auth-allow-http = true }\n"
        f'"/https-only" = {{ root = "{project / "private"}", auth = "django" }}\n'
    )
    with Server([], cwd=home) as server:
        yield server


def test_a_user_in_the_group_gets_the_file(guarded: Server) -> None:
    status, _, body = get(guarded, "/private/report.txt", basic("alice"))
    assert status == 200 and body == b"for staff only\n"
    status, _, body = get(guarded, "/private/report.txt", basic("alice"))  # now from the cache
    assert status == 200 and body == b"for staff only\n"


def test_no_or_wrong_credentials_get_a_challenge(guarded: Server) -> None:
    for headers in ((), (basic("alice", "wrong-password"),), (basic("nobody"),), ("Authorization: Basic !!",)):
        status, response_headers, body = get(guarded, "/private/report.txt", *headers)
        assert status == 401, headers
        assert response_headers["www-authenticate"].startswith('Basic realm="')
        assert b"staff only" not in body
    assert "wrong-password" not in guarded.log()  # refusals are logged, passwords never
    assert guarded.wait_for(r"refused user 'alice' from 127\.0\.0\.1: wrong password", 5)


def test_the_wrong_group_is_forbidden(guarded: Server) -> None:
    status, headers, body = get(guarded, "/private/report.txt", basic("bob"))
    assert status == 403 and "www-authenticate" not in headers and b"staff only" not in body
    assert guarded.wait_for(r"refused user 'bob' from 127\.0\.0\.1: not in staff", 5)


def test_an_inactive_user_is_refused(guarded: Server) -> None:
    status, _, body = get(guarded, "/private/report.txt", basic("carol"))
    assert status == 401 and b"staff only" not in body


def test_plain_http_is_refused_unless_allowed(guarded: Server) -> None:
    status, headers, body = get(guarded, "/https-only/report.txt", basic("alice"))
    assert status == 403 and "www-authenticate" not in headers and b"staff only" not in body
    assert guarded.wait_for(r"/https-only: refused a request from 127\.0\.0\.1 over plain HTTP", 5)


def test_a_mounted_app_behind_djangos_users(project: Path, tmp_path: Path) -> None:
    (tmp_path / "corral.toml").write_text(
        f'[sites.main]\ndefault = true\nchdir = "{project}"\nsettings = "mysite.settings_files"\n'
        'mounts = { "/tools" = { app = "basic:hello", auth = "django", auth-groups = ["staff"], '
        "auth-allow-http = true } }\n"
    )
    with Server([], cwd=tmp_path) as server:
        status, _, body = get(server, "/tools/", basic("alice"))
        assert status == 200 and body.startswith(b"Hello")
        assert get(server, "/tools/", basic("bob"))[0] == 403
        assert get(server, "/tools/", basic("alice", "nope"))[0] == 401
        assert get(server, "/flavor/")[0] == 200  # the site's own app is not guarded


# -- the guard over real HTTPS, and behind a proxy that says https ----------------------------

GUARDED_HTTPS_ONLY = '"/https-only" = {{ root = "{root}", auth = "django", auth-groups = ["staff"] }}\n'


def https_only_config(home: Path, project: Path, *top: str) -> None:
    (home / "corral.toml").write_text(
        f'chdir = "{project}"\nsettings = "mysite.settings_files"\n' + "".join(f"{line}\n" for line in top)
        + "[static]\n" + GUARDED_HTTPS_ONLY.format(root=project / "private")
    )


def fetch(port: int, path: str, *headers: str, source: str | None = None,
          context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (from `source`, over TLS with `context`); the answer."""
    sock = socket.socket()
    sock.settimeout(10)
    if source is not None:
        sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    extra = "".join(f"{h}\r\n" for h in headers)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n".encode())
        data, closed = read_to_eof(sock, 10)
    assert closed, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    found = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), found, body


def test_a_guarded_file_over_https(project: Path, tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    https_only_config(tmp_path, project, f'certfile = "{pki.cert}"', f'keyfile = "{pki.key}"')
    with Server([], cwd=tmp_path) as server:
        status, _, body = fetch(server.port, "/https-only/report.txt", basic("alice"), context=pki.context())
        assert status == 200 and body == b"for staff only\n"
        # Over TLS a challenge is safe to send: the browser may ask for the password.
        status, headers, body = fetch(server.port, "/https-only/report.txt", context=pki.context())
        assert status == 401 and headers["www-authenticate"].startswith('Basic realm="static /https-only"')
        status, _, body = fetch(server.port, "/https-only/report.txt", basic("bob"), context=pki.context())
        assert status == 403 and b"staff only" not in body


UNTRUSTED = "127.0.0.5"  # a loopback address that is not in the default --trusted-proxies (127.0.0.1)


def test_a_guarded_file_behind_a_proxy_that_says_https(project: Path, tmp_path: Path) -> None:
    https_only_config(tmp_path, project)
    with Server([], cwd=tmp_path) as server:
        # From 127.0.0.1 (a trusted proxy, by default): its X-Forwarded-Proto says the client used TLS.
        status, _, body = fetch(server.port, "/https-only/report.txt", basic("alice"), "X-Forwarded-Proto: https")
        assert status == 200 and body == b"for staff only\n"
        status, headers, _ = fetch(server.port, "/https-only/report.txt", "X-Forwarded-Proto: https")
        assert status == 401 and "www-authenticate" in headers
        assert fetch(server.port, "/https-only/report.txt", basic("alice"), "Forwarded: proto=https")[0] == 200
        # The proxy saying http, or saying nothing: plain HTTP, refused without a prompt.
        for said in ("X-Forwarded-Proto: http", "X-Forwarded-For: 198.51.100.7"):
            status, headers, body = fetch(server.port, "/https-only/report.txt", basic("alice"), said)
            assert status == 403 and "www-authenticate" not in headers and b"staff only" not in body
        # An untrusted peer cannot claim https: its header is removed, the request is plain HTTP.
        for spoof in ("X-Forwarded-Proto: https", "X-Forwarded_Proto: https", "Forwarded: proto=https"):
            for credentials in ((basic("alice"),), ()):
                status, headers, body = fetch(server.port, "/https-only/report.txt", *credentials, spoof,
                                              source=UNTRUSTED)
                assert status == 403, (spoof, credentials)
                assert "www-authenticate" not in headers and b"staff only" not in body
        assert server.wait_for(rf"/https-only: refused a request from {UNTRUSTED.replace('.', '[.]')} over plain HTTP",
                               5)
