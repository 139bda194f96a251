"""Protocol errors that know their HTTP status.

Every way a request can be refused raises one of these; the connection renders
it with `error.status` and closes. No isinstance ladders elsewhere.
"""

from __future__ import annotations


class HTTPError(Exception):
    """A request the server refuses; `status` and `reason` render the response."""

    status = 400
    reason = "Bad Request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason


class BadRequest(HTTPError):
    status, reason = 400, "Bad Request"


class RequestTimeout(HTTPError):
    status, reason = 408, "Request Timeout"


class ContentTooLarge(HTTPError):
    status, reason = 413, "Content Too Large"


class URITooLong(HTTPError):
    status, reason = 414, "URI Too Long"


class HeaderFieldsTooLarge(HTTPError):
    status, reason = 431, "Request Header Fields Too Large"


class NotImplementedByServer(HTTPError):
    status, reason = 501, "Not Implemented"


class VersionNotSupported(HTTPError):
    status, reason = 505, "HTTP Version Not Supported"


class HTTP2Preface(VersionNotSupported):
    """The HTTP/2 connection preface (`PRI * HTTP/2.0`): a 505, unless h2c is on (--http2)."""
