"""ASP.NET-style route templates as the Functions host uses them: `items/{id:int}/{name?}`, `{*rest}`.

Literal segments match case-insensitively; parameter values are URL-decoded per segment; a trailing
slash is ignored. When several templates match, the most specific wins (literal before constrained
parameter before plain parameter before catch-all), as in ASP.NET Core routing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

_PARAMETER = re.compile(r"\{([^{}]*)\}")


class RouteTemplateError(ValueError):
    """A route template the dev host cannot parse (the message names the template)."""


def _is_int(value: str, low: int, high: int) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return low <= number <= high and value.strip() == value


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip() == value


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _number_arg(arguments: str, template: str) -> int:
    try:
        return int(arguments)
    except ValueError as error:
        raise RouteTemplateError(f"route {template!r}: bad constraint argument {arguments!r}") from error


def _constraint(spec: str, template: str) -> Callable[[str], bool]:
    """One inline constraint (`int`, `alpha`, `min(1)`, `regex(^a+$)`, …) as a predicate."""
    name, _, arguments = spec.partition("(")
    name = name.strip().lower()
    if arguments:
        if not arguments.endswith(")"):
            raise RouteTemplateError(f"route {template!r}: bad constraint {spec!r}")
        arguments = arguments[:-1]
    int32 = (-(2**31), 2**31 - 1)
    int64 = (-(2**63), 2**63 - 1)
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _is_int(v, *int32),
        "long": lambda v: _is_int(v, *int64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: v.isascii() and v.isalpha(),
        "guid": _is_guid,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple and not arguments:
        return simple[name]
    if name == "minlength":
        low = _number_arg(arguments, template)
        return lambda v: len(v) >= low
    if name == "maxlength":
        high = _number_arg(arguments, template)
        return lambda v: len(v) <= high
    if name == "length":
        parts = [_number_arg(a, template) for a in arguments.split(",")]
        if len(parts) == 1:
            return lambda v: len(v) == parts[0]
        return lambda v: parts[0] <= len(v) <= parts[1]
    if name == "min":
        low = _number_arg(arguments, template)
        return lambda v: _is_int(v, *int64) and int(v) >= low
    if name == "max":
        high = _number_arg(arguments, template)
        return lambda v: _is_int(v, *int64) and int(v) <= high
    if name == "range":
        low, high = (_number_arg(a, template) for a in arguments.split(","))
        return lambda v: _is_int(v, *int64) and low <= int(v) <= high
    if name == "regex":
        try:
            pattern = re.compile(arguments, re.IGNORECASE)
        except re.error as error:
            raise RouteTemplateError(f"route {template!r}: bad regex {arguments!r}") from error
        return lambda v: pattern.search(v) is not None
    raise RouteTemplateError(f"route {template!r}: unknown constraint {spec!r}")


@dataclass(frozen=True)
class _Parameter:
    name: str
    constraints: tuple[Callable[[str], bool], ...]
    optional: bool
    catch_all: bool
    default: str | None

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass(frozen=True)
class _Segment:
    """One `/`-separated piece of a template: literal text and parameters."""

    parts: tuple[str | _Parameter, ...]
    pattern: re.Pattern[str]

    @property
    def parameters(self) -> list[_Parameter]:
        return [part for part in self.parts if isinstance(part, _Parameter)]

    @property
    def lone_parameter(self) -> _Parameter | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], _Parameter):
            return self.parts[0]
        return None

    @property
    def precedence(self) -> int:
        """ASP.NET's per-segment order: 1 literal, 2 complex, 3 constrained, 4 parameter, 5 catch-all."""
        parameter = self.lone_parameter
        if not self.parameters:
            return 1
        if parameter is None:
            return 2
        if parameter.catch_all:
            return 5
        return 3 if parameter.constraints else 4


def _parse_parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    name, *constraint_specs = _split_constraints(body)
    optional = name.endswith("?")
    name = name.rstrip("?")
    default: str | None = None
    if "=" in name:
        name, default = name.split("=", 1)
    if constraint_specs and constraint_specs[-1].endswith("?"):
        optional = True
        constraint_specs[-1] = constraint_specs[-1][:-1]
    if not name.isidentifier():
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r}")
    return _Parameter(
        name=name,
        constraints=tuple(_constraint(spec, template) for spec in constraint_specs),
        optional=optional or default is not None,
        catch_all=catch_all,
        default=default,
    )


def _split_constraints(body: str) -> list[str]:
    """`id:int:min(1)` → [`id`, `int`, `min(1)`] (colons inside parentheses stay)."""
    pieces: list[str] = []
    depth = 0
    current = ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return pieces


def _parse_segment(text: str, template: str) -> _Segment:
    parts: list[str | _Parameter] = []
    regex = ""
    position = 0
    for match in _PARAMETER.finditer(text):
        literal = text[position : match.start()]
        if literal:
            parts.append(literal)
            regex += re.escape(literal)
        parameter = _parse_parameter(match.group(1), template)
        regex += f"(?P<{parameter.name}>.+?)"
        parts.append(parameter)
        position = match.end()
    tail = text[position:]
    if tail:
        parts.append(tail)
        regex += re.escape(tail)
    if "{" in tail or "}" in tail:
        raise RouteTemplateError(f"route {template!r}: unbalanced braces in {text!r}")
    return _Segment(parts=tuple(parts), pattern=re.compile(regex, re.IGNORECASE | re.DOTALL))


@dataclass(frozen=True)
class RouteTemplate:
    text: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        cleaned = text.strip().removeprefix("~").strip("/")
        raw_segments = cleaned.split("/") if cleaned else []
        if any(not segment for segment in raw_segments):
            raise RouteTemplateError(f"route {text!r}: empty segment")
        segments = tuple(_parse_segment(segment, text) for segment in raw_segments)
        names = [p.name.lower() for s in segments for p in s.parameters]
        if len(names) != len(set(names)):
            raise RouteTemplateError(f"route {text!r}: a parameter name appears twice")
        for index, segment in enumerate(segments):
            lone = segment.lone_parameter
            is_last = index == len(segments) - 1
            if any(p.catch_all for p in segment.parameters) and (lone is None or not is_last):
                raise RouteTemplateError(f"route {text!r}: a catch-all must be the whole last segment")
            if any(p.optional for p in segment.parameters) and lone is None:
                raise RouteTemplateError(f"route {text!r}: an optional parameter must be a whole segment")
        return cls(text=text, segments=segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.precedence for segment in self.segments)

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Route values when the decoded path segments match this template, else None."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            lone = segment.lone_parameter
            if lone is not None and lone.catch_all:
                rest = "/".join(path_segments[index:])
                if not rest:
                    if lone.default is not None:
                        values[lone.name] = lone.default
                    return values
                if not lone.accepts(rest):
                    return None
                values[lone.name] = rest
                return values
            if index >= len(path_segments):
                if lone is not None and lone.optional:
                    if lone.default is not None:
                        values[lone.name] = lone.default
                    continue
                return None
            found = segment.pattern.fullmatch(path_segments[index])
            if found is None:
                return None
            for parameter in segment.parameters:
                value = found.group(parameter.name)
                if not parameter.accepts(value):
                    return None
                values[parameter.name] = value
        if len(path_segments) > len(self.segments):
            return None
        return values


def split_path(raw_path: str) -> list[str] | None:
    """URL path → decoded segments; a trailing slash is ignored; `//` inside matches nothing."""
    stripped = raw_path.strip("/")
    if raw_path.endswith("//"):
        return None
    if not stripped:
        return []
    segments = stripped.split("/")
    if any(not segment for segment in segments):
        return None
    return [unquote(segment) for segment in segments]


EndpointT = TypeVar("EndpointT")


@dataclass(frozen=True)
class RouteEntry(Generic[EndpointT]):
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    endpoint: EndpointT


class RouteTable(Generic[EndpointT]):
    """Every HTTP function's template under the route prefix, most specific first."""

    def __init__(self, route_prefix: str) -> None:
        self._prefix = route_prefix.strip("/")
        self._entries: list[RouteEntry[EndpointT]] = []

    def add(self, route: str, methods: Sequence[str] | None, endpoint: EndpointT) -> None:
        full = f"{self._prefix}/{route.strip().removeprefix('~').strip('/')}".strip("/")
        template = RouteTemplate.parse(full)
        allowed = frozenset(m.upper() for m in methods) if methods else None
        self._entries.append(RouteEntry(template, allowed, endpoint))
        self._entries.sort(key=lambda entry: entry.template.precedence)  # stable: definition order next

    def resolve(self, method: str, raw_path: str) -> tuple[EndpointT, dict[str, str]] | None:
        """The endpoint and route values for a request, or None (the host answers 404 either way:
        an unknown path and a known path with a method it does not allow look the same)."""
        path_segments = split_path(raw_path)
        if path_segments is None:
            return None
        for entry in self._entries:
            if entry.methods is not None and method.upper() not in entry.methods:
                continue
            values = entry.template.match(path_segments)
            if values is not None:
                return entry.endpoint, values
        return None

    def __iter__(self) -> Iterator[RouteEntry[EndpointT]]:
        return iter(self._entries)
