"""Corral: a production WSGI server that does the whole deployment story."""

__version__ = "0.1.0"


def build() -> str:
    """How this copy was installed: "compiled" (mypyc, see setup.py) or "pure Python"."""
    from importlib.util import find_spec

    spec = find_spec("corral.http.parser")  # found, not imported: the master never loads the parser
    return "compiled" if spec is not None and spec.origin and not spec.origin.endswith(".py") else "pure Python"


def install_command(python: str | None = None) -> str:
    """How to install Corral (into `python`'s environment): from a checkout, as it is distributed.

    Names this copy's own checkout when it runs from one (an editable install),
    else a placeholder path; there is no package index release to name.
    """
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ours = os.path.isfile(os.path.join(root, "pyproject.toml")) and os.path.isfile(os.path.join(root, "setup.py"))
    pip = f"{python} -m pip" if python else "pip"
    return f"{pip} install {root if ours else '/path/to/corral'}"
