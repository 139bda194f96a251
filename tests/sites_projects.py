"""Two real Django projects for the multi-site tests, created the way a Django user would.

`django-admin startproject NAME DIR` (as tests/django_project.py does, through
subprocesses, so the test process never configures Django), then each project's
own SECRET_KEY, DEBUG and ALLOWED_HOSTS appended to the generated settings, and a
`whoami/` view answering with what that process sees: a marker derived from
settings.SECRET_KEY (never the key itself), settings.DEBUG, the
DJANGO_SETTINGS_MODULE in os.environ and the PEP 3333 path split.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

_VIEWS = """
    import hashlib
    import os

    from django.conf import settings
    from django.http import JsonResponse


    def whoami(request):
        return JsonResponse({
            "marker": hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest()[:16],
            "debug": settings.DEBUG,
            "django_settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
            "pid": os.getpid(),
            "script_name": request.META.get("SCRIPT_NAME"),
            "path_info": request.path_info,
        })
"""

_URLS_APPEND = """
from {package} import views  # noqa: E402

urlpatterns += [path("whoami/", views.whoami)]
"""


@dataclass(frozen=True)
class DjangoProject:
    root: Path  # holds manage.py and the package; the site's chdir
    package: str  # the settings module is f"{package}.settings"
    secret_key: str
    debug: bool

    @property
    def settings(self) -> str:
        return f"{self.package}.settings"

    @property
    def marker(self) -> str:
        """What `whoami/` shows for this project's SECRET_KEY."""
        return secret_marker(self.secret_key)


def secret_marker(secret_key: str) -> str:
    return hashlib.sha256(secret_key.encode()).hexdigest()[:16]


def create_site_project(root: Path, package: str, secret_key: str, debug: bool, hosts: list[str]) -> DjangoProject:
    """`startproject package root`, with its own secret, DEBUG, hosts and the whoami view."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "django", "startproject", package, str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"startproject {package} failed:\n{result.stdout}{result.stderr}")
    with open(root / package / "settings.py", "a") as settings:
        settings.write(f"\nSECRET_KEY = {secret_key!r}\nDEBUG = {debug!r}\nALLOWED_HOSTS = {hosts!r}\n")
    (root / package / "views.py").write_text(textwrap.dedent(_VIEWS).lstrip())
    with open(root / package / "urls.py", "a") as urls:
        urls.write(_URLS_APPEND.format(package=package))
    return DjangoProject(root=root, package=package, secret_key=secret_key, debug=debug)
