"""Entry point of a worker started under a site's virtualenv interpreter (see spawn.py)."""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from ..server.worker import run_worker
    from .lifeline import die_with_parent
    from .spawn import decode_spec

    if not die_with_parent(int(os.environ.pop("CORRAL_MASTER_PID"))):
        return 0  # the master died while we started
    fd = int(os.environ.pop("CORRAL_SPEC_FD"))
    with os.fdopen(fd, "rb") as pipe:
        spec = decode_spec(json.loads(pipe.read()))
    from ..observe import logs

    logs.configure(spec.config.log_level)
    return run_worker(spec)


if __name__ == "__main__":
    sys.exit(main())
