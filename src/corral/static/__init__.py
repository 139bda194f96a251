"""Files served by the worker's event loop without the app: the static map (docs/static.md)."""
