"""GET /api/playground: a page to try the API in a browser (docs/playground.md).

The page is static (imagegen/playground/: HTML, CSS, JS; no build step). It is served as one response
with the stylesheet and script inlined, so one anonymous route is enough here and in Azure, and the
Content-Security-Policy allows exactly those two by their SHA-256 hashes and nothing else inline.
The page holds no secret: the user pastes a function key, which stays in the browser tab.
The only per-request part is a JSON data block with the options the configured model accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from imagegen.domain.catalog import rules_for_model
from imagegen.domain.errors import SettingsError
from imagegen.domain.requests import REQUEST_FIELD_TABLE, ModelRules
from imagegen.domain.settings import ROUTE_PREFIX, Settings
from imagegen.edges.context import HandlerContext

DEFAULT_API_BASE = ROUTE_PREFIX
PAGE_ROUTE = "playground"
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_PLACEHOLDER = re.compile(r"\{\{(style|script|config)\}\}")


@dataclass(frozen=True)
class _Assets:
    template: str
    style: str
    script: str

    @cached_property
    def style_source(self) -> str:
        """The stylesheet's CSP hash source (hashed once per process, not per page)."""
        return _sha256_source(self.style)

    @cached_property
    def script_source(self) -> str:
        return _sha256_source(self.script)


@cache
def _assets() -> _Assets:
    folder = resources.files("imagegen.edges") / "playground"
    return _Assets(
        template=(folder / "index.html").read_text(encoding="utf-8"),
        style=(folder / "playground.css").read_text(encoding="utf-8"),
        script=(folder / "playground.js").read_text(encoding="utf-8"),
    )


def _sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def _json_for_script_block(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever strings it holds."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def model_options(rules: ModelRules) -> dict[str, Any]:
    """What the page offers: the field table's choices for this model, the rules the API validates with."""
    return {
        "name": rules.name,
        "max_n": rules.max_n,
        "max_prompt_chars": rules.max_prompt_chars,
        "default_size": rules.default_size,
        "options": {
            entry.name: {"label": entry.summary, "values": list(entry.choices(rules))}
            for entry in REQUEST_FIELD_TABLE
            if entry.choices is not None
        },
        "custom_size": _custom_size(rules),
    }


def _custom_size(rules: ModelRules) -> dict[str, Any] | None:
    rule = rules.custom_size
    if rule is None:
        return None
    return {
        "multiple_of": rule.multiple_of,
        "min_edge": rule.min_edge,
        "max_edge": rule.max_edge,
        "text": rule.describe(),
    }


def image_sources(settings: Settings | None) -> list[str]:
    """Where images may load from: SAS links are https in Azure; the local stack's Azurite may be http."""
    sources = ["https:"]
    if settings is not None:
        blob = urlsplit(settings.storage.blob_service_uri)
        if blob.scheme == "http" and blob.netloc:
            sources.append(f"http://{blob.netloc}")
    return sources


def content_security_policy(settings: Settings | None) -> str:
    assets = _assets()
    directives = [
        "default-src 'none'",
        f"script-src {assets.script_source}",
        f"style-src {assets.style_source}",
        f"img-src {' '.join(image_sources(settings))}",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ]
    return "; ".join(directives)


def api_base_for(url: str) -> str:
    """`/api` from `…/api/playground` (the page calls the API on its own origin, under its own prefix)."""
    path = urlsplit(url).path
    # Empty segments collapse ("//api" would be a host name to the browser); anything but plain
    # path characters falls back to the default, so the base is always a path on the page's origin.
    segments = [segment for segment in path.split("/") if segment]
    if not segments or segments[-1] != PAGE_ROUTE or not all(_PLAIN_SEGMENT.fullmatch(s) for s in segments):
        return DEFAULT_API_BASE
    return "/" + "/".join(segments[:-1]) if len(segments) > 1 else DEFAULT_API_BASE


def render_page(settings: Settings | None, api_base: str) -> str:
    assets = _assets()
    config = {
        "api_base": api_base,
        "model": model_options(rules_for_model(settings.model)) if settings is not None else None,
    }
    pieces = {"style": assets.style, "script": assets.script, "config": _json_for_script_block(config)}
    # One pass, so text inside an inserted piece is never substituted again.
    return _PLACEHOLDER.sub(lambda match: pieces[match.group(1)], assets.template)


def _settings_or_none(context: HandlerContext) -> Settings | None:
    try:
        return context.settings()
    except SettingsError:
        return None  # the page still loads; the API's own answers (and /api/health) say what is wrong


def playground(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """The page, with headers that keep it to itself: strict CSP, no sniffing, no framing, no referrer."""
    settings = _settings_or_none(context)
    body = render_page(settings, api_base_for(req.url))
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }
    return func.HttpResponse(body, status_code=200, headers=headers, mimetype="text/html", charset="utf-8")
