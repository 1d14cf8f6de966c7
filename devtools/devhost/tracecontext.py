"""W3C trace context for `context.trace_context`, as the host hands it to the worker.

The host runs each invocation in its own activity: an HTTP request with a valid `traceparent`
continues the caller's trace (same trace id and flags, a new span id); anything else starts a trace.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from azure.functions import _abc as functions_abc  # TraceContext is not re-exported by azure.functions

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_NOT_SAMPLED = "00"


@dataclass(frozen=True)
class TraceParent:
    """A parsed `traceparent` header (W3C Trace Context, version 00 fields)."""

    trace_id: str
    parent_id: str
    flags: str

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """A valid `traceparent`, or None: lowercase hex, non-zero ids, version not ff, and for version 00
    nothing after the flags (a later version may append fields)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"]):
        return None
    if set(match["trace_id"]) == {"0"} or set(match["parent_id"]) == {"0"}:
        return None
    return TraceParent(match["trace_id"], match["parent_id"], match["flags"])


def _nonzero_hex(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if set(value) != {"0"}:
            return value


class TraceContext(functions_abc.TraceContext):
    """What `context.trace_context` is (the worker's TraceContext, with its deprecated aliases)."""

    def __init__(self, trace_parent: str, trace_state: str, attributes: Mapping[str, str]) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = dict(attributes)

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes

    # The worker's deprecated spellings, still read by older code.
    @property
    def Traceparent(self) -> str:
        return self._trace_parent

    @property
    def Tracestate(self) -> str:
        return self._trace_state

    @property
    def Attributes(self) -> dict[str, str]:
        return self._attributes


def invocation_trace_context(incoming: Mapping[str, str] | None = None) -> TraceContext:
    """The invocation's trace context: a child span of a valid incoming `traceparent` (its
    `tracestate` kept), else the first span of a new trace. `incoming`: lowercase header names."""
    headers = incoming or {}
    parent = parse_traceparent(headers.get(TRACEPARENT_HEADER))
    if parent is None:
        own = TraceParent(_nonzero_hex(16), _nonzero_hex(8), _NOT_SAMPLED)
        return TraceContext(own.header, "", {})
    own = TraceParent(parent.trace_id, _nonzero_hex(8), parent.flags)
    return TraceContext(own.header, headers.get(TRACESTATE_HEADER, ""), {})
