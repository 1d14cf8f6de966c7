"""`python -m imagegen "a painting of a dog" -o images/`: generate through the API, save the images.

Where the API is: --url / IMAGEGEN_URL (e.g. https://<app>.azurewebsites.net/api) and --key /
IMAGEGEN_KEY; without them, the local stack's .local/stack.json (`make up`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from imagegen.client import ApiError, ContentFilteredError, ImageGenClient, Job, ThrottledError

STACK_FILE = Path(".local") / "stack.json"
SPINNER = "|/-\\"


class Progress:
    """One status line that rewrites itself on a terminal, plain lines elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._ticks = 0
        self._last_status = ""

    def __call__(self, job: Job, elapsed: float) -> None:
        self._ticks += 1
        if self._tty:
            spin = SPINNER[self._ticks % len(SPINNER)]
            self._stream.write(f"\r  {spin} {job.status:<9} {elapsed:6.1f} s  job {job.id}")
            self._stream.flush()
        elif job.status != self._last_status:
            self._stream.write(f"  {job.status} after {elapsed:.1f} s (job {job.id})\n")
        self._last_status = job.status

    def finish(self) -> None:
        if self._tty and self._ticks:
            self._stream.write("\n")


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None, str | bool]:
    url = args.url or os.environ.get("IMAGEGEN_URL")
    key = args.key or os.environ.get("IMAGEGEN_KEY")
    verify: str | bool = args.ca_file or True
    if url:
        return url, key, verify
    if not STACK_FILE.exists():
        raise SystemExit("no API given: pass --url/--key (or IMAGEGEN_URL/IMAGEGEN_KEY), or run `make up`")
    stack = json.loads(STACK_FILE.read_text())
    return stack["devhost"]["api"], key or stack["devhost"]["function_key"], args.ca_file or stack["ca_file"]


def _targets(job: Job, out: Path) -> list[Path]:
    if out.suffix and len(job.images) == 1:
        return [out]
    folder = out.parent / out.stem if out.suffix else out
    return [folder / f"{job.id}-{index}.{image.extension}" for index, image in enumerate(job.images)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagegen", description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt")
    parser.add_argument("-o", "--out", type=Path, default=Path("images"), help="a folder, or a file when n=1")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--size")
    parser.add_argument("--quality")
    parser.add_argument("--user", help="an id of your end user, passed on for abuse monitoring")
    parser.add_argument("--format", dest="output_format")
    parser.add_argument("--url", help="the API root, e.g. https://<app>.azurewebsites.net/api")
    parser.add_argument("--key", help="a function key")
    parser.add_argument("--ca-file", help="a CA bundle to trust (the local stack's is found on its own)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the job")
    args = parser.parse_args(argv)
    url, key, verify = _endpoint(args)
    progress = Progress(sys.stderr)
    with ImageGenClient(url, key, verify=verify) as client:
        print(f"POST {url}/images")
        try:
            job = client.generate(
                args.prompt,
                n=args.n,
                size=args.size,
                quality=args.quality,
                user=args.user,
                output_format=args.output_format,
                timeout=args.timeout,
                on_progress=progress,
            )
        except ContentFilteredError as error:
            progress.finish()
            print(f"refused by the content filter: {json.dumps(error.details)}", file=sys.stderr)
            return 3
        except ThrottledError as error:
            progress.finish()
            print(f"Azure OpenAI is busy; try again in {error.retry_after or 60:.0f} s", file=sys.stderr)
            return 4
        except ApiError as error:
            progress.finish()
            print(f"failed: {error.code} (HTTP {error.status}): {error.message}", file=sys.stderr)
            return 1
        progress.finish()
        print(f"job       {job.id} ({job.status}, {job.model or 'model not reported'})")
        if job.cost:
            print(
                f"cost      {job.cost['amount']} {job.cost['currency']} (prices as of {job.cost['prices_as_of']})"
            )
        for image, target in zip(job.images, _targets(job, args.out), strict=True):
            client.download(image, target)
            print(f"image     {image.width}x{image.height} {image.content_type}, {image.bytes} bytes")
            print(f"SAS link  {image.url}")
            print(f"expires   {image.expires_at}")
            print(f"saved     {target}")
    return 0
