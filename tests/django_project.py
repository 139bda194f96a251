"""Create a real Django project in a directory, the way a Django user would.

`django-admin startproject mysite`, then a few files a real project would have
(a views module, alternative settings modules, a WSGI middleware), `migrate`
on SQLite and a superuser created through manage.py. Everything runs as
subprocesses so the test process never imports the project or configures
Django itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ADMIN_USER = "admin"
ADMIN_PASSWORD = "corral-admin-pw-1"

# Extra files, relative to the project root; the generated files are left as
# Django wrote them except for the lines appended below.
_FILES = {
    "mysite/views.py": '''
        import asyncio
        import os
        import threading

        from django.conf import settings
        from django.core.signals import request_finished
        from django.http import FileResponse, HttpResponse, JsonResponse


        def flavor(request):
            # Which settings module is live: the observable difference between settings modules.
            return HttpResponse(f"{settings.FLAVOR} {os.environ['DJANGO_SETTINGS_MODULE']}", content_type="text/plain")


        def env(request, name):
            return JsonResponse({"name": name, "value": os.environ.get(name)})


        def download(request):
            # A database query, then a file big enough that os.sendfile finishes later on the loop.
            global view_thread
            from django.contrib.auth.models import User

            view_thread = threading.get_ident()
            response = FileResponse(open(settings.BASE_DIR / "download.bin", "rb"))
            response["X-Users"] = str(User.objects.count())
            return response


        # Django closes the request's DB connections in request_finished, sent from response.close().
        # It only works in the thread that ran the view and where no asyncio loop is visible.
        view_thread = None
        finished = []


        def on_request_finished(sender, **kwargs):
            try:
                asyncio.get_running_loop()
                loop_visible = True
            except RuntimeError:
                loop_visible = False
            finished.append({"view_thread": threading.get_ident() == view_thread, "loop_visible": loop_visible})


        request_finished.connect(on_request_finished)


        def finished_log(request):
            return JsonResponse({"finished": finished})


        def scheme(request):
            # What Django believes about the original request behind a reverse proxy.
            text = f"{request.scheme} {request.get_host()} {request.is_secure()}"
            return HttpResponse(text, content_type="text/plain")
    ''',
    # The production settings docs/django.md describes: secrets and hosts from the
    # environment, DEBUG off, static files by WhiteNoise, behind a TLS-terminating proxy.
    "mysite/settings_prod.py": '''
        import os

        from .settings import *  # noqa: F403
        from .settings import BASE_DIR, MIDDLEWARE

        FLAVOR = "prod"
        DEBUG = False
        SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
        ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
        STATIC_ROOT = BASE_DIR / "staticfiles"
        MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        USE_X_FORWARDED_HOST = True
    ''',
    # Imports everything from settings and changes what /flavor/ shows.
    "mysite/settings_alt.py": '''
        from .settings import *  # noqa: F403

        FLAVOR = "alt"
    ''',
    # WSGI_APPLICATION pointing at a middleware that wraps Django's handler.
    "mysite/settings_wrapped.py": '''
        from .settings import *  # noqa: F403

        FLAVOR = "wrapped"
        WSGI_APPLICATION = "mysite.middleware.application"
    ''',
    "mysite/middleware.py": '''
        """A WSGI middleware around Django's handler, named by WSGI_APPLICATION."""

        from django.core.wsgi import get_wsgi_application


        class Stamp:
            def __init__(self, app):
                self.app = app

            def __call__(self, environ, start_response):
                def stamped(status, headers, exc_info=None):
                    return start_response(status, [*headers, ("X-Wrapped-By", "mysite.middleware")], exc_info)

                return self.app(environ, stamped)


        application = Stamp(get_wsgi_application())
    ''',
    # Error cases: settings that raise on import, and a WSGI_APPLICATION that points nowhere.
    "mysite/settings_broken.py": '''
        from .settings import *  # noqa: F403


        def read_secret():
            raise RuntimeError("SECRET_KEY_FILE is not readable")


        SECRET_KEY = read_secret()
    ''',
    "mysite/settings_nowhere.py": '''
        from .settings import *  # noqa: F403

        WSGI_APPLICATION = "mysite.nowhere.application"
    ''',
    "mysite/settings_noattr.py": '''
        from .settings import *  # noqa: F403

        WSGI_APPLICATION = "mysite.wsgi.missing"
    ''',
}

_SETTINGS_APPEND = '''

FLAVOR = "default"
'''

_URLS_APPEND = '''
from mysite import views  # noqa: E402

urlpatterns += [
    path("flavor/", views.flavor),
    path("env/<str:name>/", views.env),
    path("scheme/", views.scheme),
    path("download/", views.download),
    path("finished/", views.finished_log),
]
'''


def _run(args: list[str], cwd: Path) -> None:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def create_django_project(root: Path) -> Path:
    """Create `mysite` in `root` (manage.py at the top), migrated, with a superuser; return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    _run([python, "-m", "django", "startproject", "mysite", str(root)], cwd=root)
    for relative, text in _FILES.items():
        (root / relative).write_text(textwrap.dedent(text).lstrip())
    with open(root / "mysite" / "settings.py", "a") as settings:
        settings.write(_SETTINGS_APPEND)
    with open(root / "mysite" / "urls.py", "a") as urls:
        urls.write(_URLS_APPEND)
    # 16 MiB: more than a loopback socket buffer, so os.sendfile always finishes later, on the loop.
    (root / "download.bin").write_bytes(bytes(range(256)) * (64 * 1024))
    _run([python, "manage.py", "migrate", "--verbosity", "0"], cwd=root)
    _run([python, "manage.py", "createsuperuser", "--noinput", "--username", ADMIN_USER,
          "--email", "admin@example.com"], cwd=root)
    return root
