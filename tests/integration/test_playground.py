"""The playground page end to end: Debian's headless Chromium (driven by playwright-core from node)
against the dev host serving function_app, with the emulator and Azurite behind it.

One browser run covers every case (playground_e2e.mjs reports what the page shows as JSON); each
test below checks one case. Screenshots go to the test's tmp dir; the success one is also copied to
test-output/playground.png.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.conftest import FAULT_SETTINGS, StackFactory
from tests.integration.test_function_app import Api, _api

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("playground_e2e.mjs")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def apis(stacks: StackFactory) -> dict[str, Api]:
    return {"main": _api(stacks()), "fault": _api(stacks(setting_overrides=FAULT_SETTINGS))}


@pytest.fixture(scope="module")
def browser_run(apis: dict[str, Api], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    if shutil.which("node") is None or not (REPO / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node and node_modules/playwright-core are needed: `make test` installs them (npm ci)")
    out = tmp_path_factory.mktemp("playground")
    main, fault = apis["main"], apis["fault"]
    page = f"{main.base}/playground"
    key = main.stack.function_key
    cases = [
        # The key arrives in the fragment, which never reaches the server.
        {"name": "success", "url": f"{page}#key={key}", "prompt": "a lighthouse at dawn, watercolor", "n": 2},
        {"name": "content_filter", "url": f"{page}#key={key}", "prompt": "something forbidden"},
        {"name": "wrong_key", "url": page, "key": "not-the-key", "prompt": "a red fox"},
        {"name": "invalid", "url": page, "key": key, "prompt": "too many", "n": 11},
        {
            "name": "throttled",
            "url": f"{fault.base}/playground",
            "key": fault.stack.function_key,
            "prompt": "too busy",
        },
    ]
    for case in cases:
        case["screenshot"] = str(out / f"{case['name']}.png")
    cases[0]["progress_screenshot"] = str(out / "success-while-running.png")
    plan = out / "plan.json"
    plan.write_text(json.dumps({"chromium": str(CHROMIUM), "cases": cases}))

    fault.emulator("POST", "faults", {"kind": "429", "count": 20, "retry_after": 2})
    started = time.monotonic()
    try:
        completed = subprocess.run(
            ["node", str(SCRIPT), str(plan)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        fault.emulator("POST", "reset", {"config": True})
    assert completed.returncode == 0, completed.stderr[-4000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["by_name"] = {result["name"]: result for result in report["results"]}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    success_shot = out / "success.png"
    if success_shot.exists():
        (REPO / "test-output").mkdir(exist_ok=True)
        shutil.copyfile(success_shot, REPO / "test-output" / "playground.png")
    print(f"playground: {len(cases)} cases in {report['seconds']} s with Chromium {report['browser']}; {out}")
    return report


def _case(report: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = report["by_name"][name]
    assert "failure" not in result, result.get("failure")
    assert result["saw_progress"] and result["progress_hidden"]  # shown while busy, hidden after
    assert result["console_problems"] == [], result["console_problems"]  # no CSP violation, no script error
    return result


def test_the_page_is_anonymous_html_with_a_strict_csp(apis: dict[str, Api]) -> None:
    response = requests.get(f"{apis['main'].base}/playground", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = {
        part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1:]
        for part in response.headers["Content-Security-Policy"].split(";")
    }
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"][0].startswith("'sha256-") and " " not in csp["script-src"][0]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The page holds no secret: not the function key, not the storage account's.
    assert apis["main"].stack.function_key not in response.text
    assert "AccountKey" not in response.text
    assert '"model":{"name":"gpt-image-2"' in response.text


def test_a_prompt_shows_its_images_and_links(browser_run: dict[str, Any], apis: dict[str, Api]) -> None:
    result = _case(browser_run, "success")
    assert result["page_status"] == 200
    assert "content-security-policy" in result["page_headers"]
    # The key came from the fragment: kept in the tab, gone from the address bar.
    assert result["after_load"]["hash"] == ""
    assert result["after_load"]["session_key"] == result["after_load"]["key_field"] != ""
    assert result["after_load"]["size_visible"] and "1536x1024" in result["after_load"]["sizes"]

    assert not result["error_visible"], result["error_title"]
    assert result["status"].startswith("Done: 2 images")
    assert len(result["images"]) == 2
    blob_origin = urlsplit(apis["main"].stack.azurite.blob_url)
    for image in result["images"]:
        assert image["natural_width"] == 1024 and image["natural_height"] == 1024
        assert image["link_href"] == image["src"]
        link = urlsplit(image["link_href"])
        assert (link.scheme, link.netloc) == (blob_origin.scheme, blob_origin.netloc)
        assert "sig=" in link.query
        assert image["expires_datetime"]
        assert "Link expires" in image["caption"] and "1024\u00d71024" in image["caption"]
        assert image["alt"].endswith("a lighthouse at dawn, watercolor")

    # Exactly the API's async pattern: POST with Prefer: respond-async, then GETs of Location.
    calls = result["api_requests"]
    assert calls[0]["method"] == "POST" and calls[0]["prefer"] == "respond-async"
    assert [c["method"] for c in calls[1:]] and all(c["method"] == "GET" for c in calls[1:])
    assert all(c["has_key_header"] and "code=" not in c["query"] for c in calls)


def test_a_filtered_prompt_says_so_with_the_categories(browser_run: dict[str, Any]) -> None:
    result = _case(browser_run, "content_filter")
    assert result["error_visible"]
    assert result["error_title"] == "The content filter blocked this request."
    assert result["error_code"] == "HTTP 422 · content_filtered"
    assert any(line.startswith("violence (filtered") for line in result["error_details"]), result
    assert result["images"] == []


def test_a_wrong_key_says_so_and_points_at_the_key_field(browser_run: dict[str, Any]) -> None:
    result = _case(browser_run, "wrong_key")
    assert result["error_title"] == "The function key was not accepted."
    assert result["error_code"] == "HTTP 401"
    assert result["invalid_fields"] == ["key"] and result["focused"] == "key"
    assert [c["method"] for c in result["api_requests"]] == ["POST"]


def test_invalid_input_names_the_field(browser_run: dict[str, Any]) -> None:
    result = _case(browser_run, "invalid")
    assert result["error_title"] == "Check “n”."
    assert "between 1 and 10" in result["error_message"]
    assert result["error_code"] == "HTTP 400 · invalid_request"
    assert result["invalid_fields"] == ["n"] and result["focused"] == "n"


def test_throttling_says_when_to_try_again(browser_run: dict[str, Any]) -> None:
    result = _case(browser_run, "throttled")
    assert result["error_title"] == "Azure OpenAI is busy right now."
    assert "Try again in 2 seconds" in result["error_message"]
    assert result["error_code"] == "HTTP 503 · upstream_throttled"
    # It went through the async pattern: 202 first, then the job's failure on a poll.
    assert [c["method"] for c in result["api_requests"]][:2] == ["POST", "GET"]


def test_the_browser_run_is_quick(browser_run: dict[str, Any]) -> None:
    assert browser_run["seconds"] < 40, browser_run["seconds"]
