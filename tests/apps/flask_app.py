"""A small real Flask app, loaded by Corral through the factory form `flask_app:create_app()`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from flask import Flask, Response, abort, jsonify, request, stream_with_context

# Lets a test hold a streamed response open until it says so (needs --threads >= 2).
_release = threading.Event()


def create_app(flavor: str = "default") -> Flask:
    app = Flask(__name__)
    app.config["FLAVOR"] = flavor

    @app.get("/")
    def index() -> str:
        return f"Hello from Flask ({app.config['FLAVOR']})"

    @app.get("/hello/<name>")
    def hello(name: str) -> Response:
        return jsonify(greeting=f"Hello, {name}!", args=request.args.to_dict(flat=False))

    @app.post("/api/items")
    def create_item() -> tuple[Response, int, dict[str, str]]:
        item = request.get_json()
        if not isinstance(item, dict) or "name" not in item:
            abort(400, description="expected a JSON object with a name")
        body = {"name": item["name"], "tags": sorted(item.get("tags", [])), "size": request.content_length}
        return jsonify(body), 201, {"Location": f"/api/items/{item['name']}"}

    @app.get("/stream")
    def stream() -> Response:
        count = request.args.get("count", 3, type=int)
        wait = request.args.get("wait") == "1"

        @stream_with_context
        def generate() -> Iterator[str]:
            yield f"first line of {count}\n"
            if wait:
                # Bounded wait: the test releases us from another connection.
                yield "released\n" if _release.wait(5) else "timed out\n"
            for number in range(1, count):
                yield f"line {number} {request.path}\n"

        return Response(generate(), mimetype="text/plain")

    @app.get("/release")
    def release() -> str:
        _release.set()
        return "ok"

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[Response, int]:
        return jsonify(error="not found", path=request.path), 404

    return app
