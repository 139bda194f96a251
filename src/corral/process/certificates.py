"""The master's copy of the TLS certificate: read at start, re-read at every reload.

Workers are started with the material held here (see server/tls.py), so a renewed
certificate reaches clients through the next generation of workers: `corral reload`
or SIGHUP after certbot renews is enough, and no connection is refused meanwhile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:
    from ..server.tls import TLSMaterial

log = logging.getLogger("corral.error")


class Certificates:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.material: TLSMaterial | None = None

    def load(self) -> str | None:
        """Read the files at start; the one-line reason they cannot be used, or None."""
        if self.config.certfile is None:
            return None
        from ..server import tls  # ssl only when TLS is on

        try:
            self.material = tls.read_material(self.config)
        except tls.TLSError as exc:
            return str(exc)
        return None

    def reload(self) -> None:
        """Re-read the files for a new generation; if they are bad now, keep serving the old ones."""
        if self.config.certfile is None:
            return
        from ..server import tls

        try:
            self.material = tls.read_material(self.config)
        except tls.TLSError as exc:
            log.error("Reload keeps the TLS certificate already loaded: %s", exc)
            return
        log.info("TLS certificate re-read from %s", self.config.certfile)
