"""Route templates, precedence and 404-for-wrong-method, as the Functions host routes."""

from __future__ import annotations

import pytest

from devtools.devhost.routing import RouteTable, RouteTemplate, RouteTemplateError, split_path


def match(template: str, path: str) -> dict[str, str] | None:
    segments = split_path(path)
    assert segments is not None
    return RouteTemplate.parse(template).match(segments)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("images", "/images", {}),
        ("images", "/IMAGES/", {}),  # literals ignore case, a trailing slash is ignored
        ("images/{id}", "/images/abc", {"id": "abc"}),
        ("images/{id}", "/images/a%20b%2Fc", {"id": "a b/c"}),  # values are URL-decoded per segment
        ("images/{id:int}", "/images/42", {"id": "42"}),
        ("images/{id:int}", "/images/x42", None),
        (
            "images/{id:guid}",
            "/images/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("images/{id:guid}", "/images/nope", None),
        ("images/{id:alpha:minlength(2)}", "/images/ab", {"id": "ab"}),
        ("images/{id:alpha:minlength(2)}", "/images/a", None),
        ("images/{n:range(1,3)}", "/images/3", {"n": "3"}),
        ("images/{n:range(1,3)}", "/images/4", None),
        ("images/{id:regex(^[a-f0-9]+$)}", "/images/beef", {"id": "beef"}),
        ("images/{id:regex(^[a-f0-9]+$)}", "/images/xyz", None),
        ("images/{id?}", "/images", {}),
        ("images/{id?}", "/images/5", {"id": "5"}),
        ("images/{id:int?}", "/images/x", None),
        ("images/{id=first}", "/images", {"id": "first"}),
        ("files/{*rest}", "/files/a/b/c.png", {"rest": "a/b/c.png"}),
        ("files/{*rest}", "/files", {}),
        ("files/{name}.{ext}", "/files/cat.png", {"name": "cat", "ext": "png"}),
        ("images/{id}", "/images", None),
        ("images/{id}", "/images/a/b", None),
    ],
)
def test_template_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert match(template, path) == expected


@pytest.mark.parametrize(
    "template", ["a/{id:nosuch}", "a/{*rest}/b", "a/x{id?}", "a/{id}/{id}", "a//b", "a/{b", "a/{bad name}"]
)
def test_bad_templates_are_refused_with_the_template_named(template: str) -> None:
    with pytest.raises(RouteTemplateError, match="route"):
        RouteTemplate.parse(template)


def test_literal_beats_parameter_whatever_the_definition_order() -> None:
    table: RouteTable[str] = RouteTable("api")
    table.add("images/{id}", ["GET"], "get_image")
    table.add("images/{id:int}", ["GET"], "get_numbered_image")
    table.add("images/health", ["GET"], "health")
    table.add("images/{*rest}", None, "catch_all")
    assert table.resolve("GET", "/api/images/health") == ("health", {})
    assert table.resolve("GET", "/api/images/12") == ("get_numbered_image", {"id": "12"})
    assert table.resolve("GET", "/api/images/ab") == ("get_image", {"id": "ab"})
    assert table.resolve("GET", "/api/images/a/b") == ("catch_all", {"rest": "a/b"})


def test_method_mismatch_falls_through_to_other_functions_then_to_404() -> None:
    table: RouteTable[str] = RouteTable("api")
    table.add("images/{id}", ["GET"], "get_image")
    table.add("images/{id}", ["delete"], "cancel_image")
    assert table.resolve("get", "/api/images/1") == ("get_image", {"id": "1"})
    assert table.resolve("DELETE", "/api/images/1") == ("cancel_image", {"id": "1"})
    assert table.resolve("PUT", "/api/images/1") is None  # the host answers 404, not 405


def test_no_methods_means_every_method_and_prefix_is_required() -> None:
    table: RouteTable[str] = RouteTable("api")
    table.add("hello", None, "hello")
    assert table.resolve("PATCH", "/api/hello") == ("hello", {})
    assert table.resolve("GET", "/hello") is None
    assert table.resolve("GET", "/api") is None


def test_empty_route_prefix_serves_from_the_root() -> None:
    table: RouteTable[str] = RouteTable("")
    table.add("/hello/", None, "hello")
    assert table.resolve("GET", "/hello") == ("hello", {})
    assert table.resolve("GET", "/api/hello") is None


def test_split_path() -> None:
    assert split_path("/") == []
    assert split_path("/a/b/") == ["a", "b"]
    assert split_path("/a//b") is None
    assert split_path("/a%2Fb") == ["a/b"]
