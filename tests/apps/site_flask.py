"""A Flask app for the multi-site tests: reports the path split and environment it sees."""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/", defaults={"rest": ""})
    @app.get("/<path:rest>")
    def where(rest: str) -> ResponseReturnValue:
        return jsonify(
            app="flask",
            pid=os.getpid(),
            script_root=request.script_root,
            path=request.path,
            url=request.url,
            django_settings_module=os.environ.get("DJANGO_SETTINGS_MODULE"),
        )

    return app
