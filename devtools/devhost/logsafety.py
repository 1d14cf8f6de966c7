"""What the HTTP server machinery may log: never the request itself.

aiohttp logs a request it cannot parse (a request line over 8190 bytes, a bad header, a broken chunk)
with the parser's exception, whose message quotes the offending bytes — the request line with its
`?code=<function key>`, or a header value. Other exceptions that pass through aiohttp or asyncio can
quote request data the same way. So every record of those loggers loses the exception's message:
a parse error becomes one line (status and exception type), any other exception keeps its type and
its stack (file, line, code) — enough to debug the dev host, nothing a caller sent.
"""

from __future__ import annotations

import logging
import traceback

from aiohttp.http_exceptions import HttpProcessingError

# The dev host's own logger for the server (aiohttp's RequestHandler logs there, see HttpHost.runner).
SERVER_LOGGER_NAME = "devhost.http.server"
# Loggers whose records come from the HTTP machinery, not from the dev host's or the app's code.
MACHINERY_LOGGERS = ("aiohttp", "asyncio", SERVER_LOGGER_NAME)
_AIOHTTP_PREFIX = "Error handling request"  # RequestHandler.handle_error: "... from <peer>"


def describe_exception(error: BaseException) -> str:
    """An exception as its type names and stack, without any message (each link of a chain too)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"{type(current).__qualname__} (message not logged)\n{stack}".rstrip())
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\nwhile handling or caused by:\n".join(reversed(parts))


def _parse_error(error: BaseException) -> HttpProcessingError | None:
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, HttpProcessingError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _from_machinery(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in MACHINERY_LOGGERS)


class ScrubRequestData(logging.Filter):
    """Rewrites records of the HTTP machinery's loggers so no exception message (which may quote the
    request line, a header or the body) is formatted; other records pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _from_machinery(record.name) or not record.exc_info or record.exc_info[1] is None:
            return True
        error = record.exc_info[1]
        summary = record.getMessage()  # aiohttp's and asyncio's texts name the peer, never the request
        parse_error = _parse_error(error)
        if parse_error is not None:
            # The client's fault, not the dev host's: one line, no traceback.
            origin = (
                summary.removeprefix(_AIOHTTP_PREFIX)
                if summary.startswith(_AIOHTTP_PREFIX)
                else f" ({summary})"
            )
            record.msg = "rejected a malformed request%s: %d %s (the request is not logged)"
            record.args = (origin, parse_error.code, type(parse_error).__name__)
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        else:
            record.msg, record.args = "%s", (summary,)
            record.exc_text = describe_exception(error)
        record.exc_info = None
        record.stack_info = None
        return True


SCRUB = ScrubRequestData()
server_log = logging.getLogger(SERVER_LOGGER_NAME)
server_log.addFilter(SCRUB)


def scrub_handler(handler: logging.Handler) -> None:
    """Install the scrubbing on a handler (every logger that reaches it), once."""
    if not any(isinstance(existing, ScrubRequestData) for existing in handler.filters):
        handler.addFilter(SCRUB)
