"""dev/apps.py: the "broken app" page, and what happens to a non-Django app."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from corral.dev.apps import broken_app, django_template_dirs, with_static_files

TRACE = 'Traceback (most recent call last):\n  File "/srv/mysite/views.py", line 3\nNameError: <name> \'x\'\n'


def call(app: Callable[..., Any], accept: str | None = None) -> tuple[str, dict[str, str], bytes]:
    environ = {} if accept is None else {"HTTP_ACCEPT": accept}
    answer: list[Any] = []
    body = b"".join(app(environ, lambda status, headers: answer.extend((status, dict(headers)))))
    return answer[0], answer[1], body


def test_broken_app_answers_500_with_an_escaped_html_page() -> None:
    status, headers, body = call(broken_app("cannot load app 'a<b>': boom & more", TRACE), "text/html,*/*")
    assert status == "500 Internal Server Error"
    assert headers == {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)),
                       "Cache-Control": "no-store"}  # never cached: the next save fixes it
    page = body.decode()
    assert page.startswith("<!doctype html>")
    assert "<pre>cannot load app &#x27;a&lt;b&gt;&#x27;: boom &amp; more</pre>" in page
    assert "NameError: &lt;name&gt;" in page and "<name>" not in page


def test_broken_app_defaults_to_html_for_browsers_without_accept() -> None:
    assert call(broken_app("boom", None))[1]["Content-Type"] == "text/html; charset=utf-8"


def test_broken_app_plain_text_for_curl_and_scripts() -> None:
    status, headers, body = call(broken_app("boom", TRACE), "*/*")
    assert status.startswith("500 ") and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body == f"The app failed to load: boom\n\n{TRACE}".encode()
    assert int(headers["Content-Length"]) == len(body)


def test_broken_app_without_a_traceback() -> None:
    _, _, body = call(broken_app("settings missing", None), "application/json")
    assert body == b"The app failed to load: settings missing\n"
    assert b"<pre></pre>" not in call(broken_app("x", None), "text/html")[2]  # no empty traceback block


def test_a_non_django_app_is_returned_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        return []

    monkeypatch.delitem(sys.modules, "django.apps", raising=False)
    assert with_static_files(app) is app
    assert django_template_dirs() == set()


def test_django_installed_but_not_set_up_changes_nothing() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        return []

    import django.apps

    if django.apps.apps.ready:
        pytest.skip("another test set Django up in this process")
    assert with_static_files(app) is app
    assert django_template_dirs() == set()
