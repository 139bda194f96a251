"""Bounds on everything a client controls.

Each field carries the setting of the same name: its default and the reason for it are
declared once, in config/settings.py; the worker fills a Limits from its Config.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.settings import from_setting


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line: int = from_setting("max_request_line")
    max_header_size: int = from_setting("max_header_size")
    max_headers: int = from_setting("max_headers")
    max_body_size: int = from_setting("max_body_size")
    body_buffer_size: int = from_setting("body_buffer_size")
