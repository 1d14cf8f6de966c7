"""The playground page's response: inlined assets allowed by hash, the model's options, no secrets."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import azure.functions as func
import pytest

from imagegen.core.service import ImageService
from imagegen.domain.requests import GPT_IMAGE_1_MINI
from imagegen.domain.settings import Settings
from imagegen.edges import playground
from imagegen.edges.context import HandlerContext


def _unused_service() -> ImageService:
    raise AssertionError("the page needs no service")


STACK_ENV = {
    "AZURE_OPENAI_ENDPOINT": "https://aoai.example.openai.azure.com",
    "AZURE_OPENAI_MODEL": "gpt-image-1-mini",
    "AZURE_OPENAI_DEPLOYMENT": "painter",
    "AzureWebJobsStorage": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    ),
}


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _inline(html: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)


def test_the_csp_allows_exactly_the_inlined_script_and_style() -> None:
    settings = Settings.from_env(STACK_ENV)
    html = playground.render_page(settings, "/api")
    csp = playground.content_security_policy(settings)
    [script] = _inline(html, "script")  # the JSON data block has a type, so it is not matched here
    [style] = _inline(html, "style")
    assert f"script-src {_hash(script)};" in csp
    assert f"style-src {_hash(style)};" in csp
    assert "default-src 'none'" in csp and "unsafe" not in csp
    # Local Azurite over http: exactly its origin, besides https: for Azure's SAS links.
    assert "img-src https: http://127.0.0.1:10000;" in csp


def test_the_page_carries_the_models_options_and_no_secret() -> None:
    settings = Settings.from_env(STACK_ENV)
    html = playground.render_page(settings, "/api")
    block = re.search(r'<script type="application/json" id="playground-config">(.*?)</script>', html)
    assert block is not None
    config = json.loads(block.group(1))
    assert config["api_base"] == "/api"
    assert config["model"] == playground.model_options(GPT_IMAGE_1_MINI)
    assert config["model"]["options"]["output_format"]["values"] == ["png", "jpeg"]
    assert "c2VjcmV0" not in html and "aoai.example" not in html
    assert "{{" not in html


def test_json_in_the_data_block_cannot_close_it() -> None:
    text = playground._json_for_script_block({"x": "</script><script>alert(1)</script><!--"})
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"x": "</script><script>alert(1)</script><!--"}


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://app.azurewebsites.net/api/playground", "/api"),
        ("http://127.0.0.1:7071/api/playground/", "/api"),
        ("http://127.0.0.1:7071/v2/playground?x=1", "/v2"),
        ("http://127.0.0.1:7071/somewhere-else", "/api"),
    ],
)
def test_the_api_base_follows_the_pages_own_path(url: str, base: str) -> None:
    assert playground.api_base_for(url) == base


def test_the_page_loads_without_settings() -> None:
    context = HandlerContext(settings=lambda: Settings.from_env({}), service=_unused_service)
    response = playground.playground(
        func.HttpRequest("GET", "https://app.example/api/playground", body=b""), context
    )
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert '{"api_base":"/api","model":null}' in response.get_body().decode()
    assert "img-src https:;" in response.headers["Content-Security-Policy"]


def test_the_pages_choices_are_the_field_tables_for_gpt_image_2_and_flux() -> None:
    from imagegen.domain.requests import FLUX_1_1_PRO, GPT_IMAGE_2

    gpt = playground.model_options(GPT_IMAGE_2)
    assert gpt["options"]["size"]["values"] == list(GPT_IMAGE_2.sizes)
    assert gpt["custom_size"]["multiple_of"] == 16 and gpt["custom_size"]["max_edge"] == 3840
    flux = playground.model_options(FLUX_1_1_PRO)
    assert flux["options"]["quality"]["values"] == [] and flux["options"]["output_format"]["values"] == []
    assert flux["custom_size"]["multiple_of"] == 32 and flux["max_n"] == 1
