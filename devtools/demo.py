"""`make demo`: one prompt through the function app on the local stack, the image saved to disk.

The quickstart's result (a generated image on disk), but through the function: POST the prompt
with the function key, wait (showing progress), print the job id and the SAS link, download the
image through that link with no credential at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from devtools.stack import STACK_FILE


def _progress(stop: threading.Event, started: float) -> None:
    interactive = sys.stdout.isatty()
    spinner = "|/-\\"
    tick = 0
    while not stop.wait(0.2 if interactive else 5.0):
        elapsed = time.monotonic() - started
        if interactive:
            print(f"\r  generating {spinner[tick % 4]} {elapsed:5.1f} s", end="", flush=True)
        else:
            print(f"  still generating ({elapsed:.0f} s)", flush=True)
        tick += 1
    if interactive:
        print("\r" + " " * 40 + "\r", end="", flush=True)


def run(prompt: str, out: Path) -> int:
    if not STACK_FILE.exists():
        print("the local stack is not running: run `make up` (make demo does it for you)", file=sys.stderr)
        return 2
    stack: dict[str, Any] = json.loads(STACK_FILE.read_text())
    api = stack["devhost"]["api"]
    ca_file = stack["ca_file"]
    headers = {"x-functions-key": stack["devhost"]["function_key"], "Content-Type": "application/json"}
    print(f"POST {api}/images")
    started = time.monotonic()
    stop = threading.Event()
    ticker = threading.Thread(target=_progress, args=(stop, started), daemon=True)
    ticker.start()
    try:
        response = requests.post(f"{api}/images", json={"prompt": prompt}, headers=headers, timeout=240)
    finally:
        stop.set()
        ticker.join()
    elapsed = time.monotonic() - started
    body = response.json()
    if response.status_code != 200:
        error = body.get("error", {})
        print(
            f"failed after {elapsed:.1f} s: HTTP {response.status_code} {error.get('code')}: {error.get('message')}"
        )
        return 1
    image = body["images"][0]
    print(f"job       {body['id']} ({body['status']} in {elapsed:.1f} s)")
    print(f"image     {image['width']}x{image['height']} {image['content_type']}, {image['bytes']} bytes")
    print(f"SAS link  {image['url']}")
    print(f"expires   {image['expires_at']}")
    download = requests.get(image["url"], timeout=60, verify=ca_file)
    download.raise_for_status()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(download.content)
    print(f"saved     {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--out", type=Path, default=Path("images/generated_image.png"))
    args = parser.parse_args(argv)
    return run(args.prompt, args.out)


if __name__ == "__main__":
    sys.exit(main())
