"""Bounds on everything a client controls, each with the reason for its default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # Longer targets are almost always scanners or broken clients; 8 KiB matches nginx.
    max_request_line: int = 8192
    # Sum of all header lines; nginx allows 4 x 8 KiB, gunicorn 100 x 8 KiB.
    max_header_size: int = 65536
    # Many more than any browser sends; bounds per-request allocations.
    max_headers: int = 100
    # A safe default where gunicorn and granian have none; raise it for upload sites.
    max_body_size: int = 100 * 1024 * 1024
    # Bodies up to this size stay in memory; larger ones spill to a temporary file.
    body_buffer_size: int = 1024 * 1024
