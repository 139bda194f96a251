"""Corral: a production WSGI server that does the whole deployment story."""

__version__ = "0.1.0"


def build() -> str:
    """How this copy was installed: "compiled" (mypyc, see setup.py) or "pure Python"."""
    from importlib.util import find_spec

    spec = find_spec("corral.http.parser")  # found, not imported: the master never loads the parser
    return "compiled" if spec is not None and spec.origin and not spec.origin.endswith(".py") else "pure Python"
