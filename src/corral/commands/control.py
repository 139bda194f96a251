"""`corral status`, `corral reload [SITE]`, `corral stop`: talk to a running master."""

from __future__ import annotations

import json
import sys

from ..config import Config
from ..process.control import ControlError, control_path, send_command
from ..process.status import render


def status(config: Config, as_json: bool) -> int:
    reply = _send(config, {"command": "status"})
    if reply is None:
        return 1
    print(json.dumps(reply, indent=2) if as_json else render(reply))
    return 0


def reload(config: Config, site: str | None) -> int:
    reply = _send(config, {"command": "reload", "site": site})
    if reply is None:
        return 1
    print(f"reloading {reply['reloading']}: new workers start, old ones retire once the new ones are ready")
    return 0


def stop(config: Config, graceful: bool) -> int:
    reply = _send(config, {"command": "stop", "graceful": graceful})
    if reply is None:
        return 1
    print("stopping" + (" gracefully" if graceful else " now"))
    return 0


def _send(config: Config, message: dict[str, object]) -> dict[str, object] | None:
    path = control_path(config)
    try:
        reply = send_command(path, message)
    except ControlError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return None
    if "error" in reply:
        sys.stderr.write(f"corral: error: {reply['error']}\n")
        return None
    return reply
