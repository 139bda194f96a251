"""Corral: a production WSGI server that does the whole deployment story."""

__version__ = "0.1.0"
