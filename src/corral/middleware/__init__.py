"""Built-in WSGI middleware and site composition (mounts, configured middleware)."""
