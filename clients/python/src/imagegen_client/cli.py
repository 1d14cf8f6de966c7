"""`imagegen-client "a painting of a dog" -o images/`: generate through the API, save the images.

Where the API is: --url / IMAGEGEN_URL (e.g. https://<app>.azurewebsites.net/api) and --key /
IMAGEGEN_KEY; without them, the local stack's .local/stack.json (`make up`).
Exit status: 0 saved, 3 refused by the content filter, 4 throttled, 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from imagegen_client._protocol import DEFAULT_TIMEOUT_SECONDS, CertificateCheck
from imagegen_client._sync import ImageGenClient
from imagegen_client.errors import ApiError, ContentFilteredError, ThrottledError
from imagegen_client.models import Job

STACK_FILE = Path(".local") / "stack.json"
SPINNER = "|/-\\"
EXIT_FAILED = 1
EXIT_CONTENT_FILTERED = 3
EXIT_THROTTLED = 4


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
        """End the rewritten line, so what follows starts on its own."""
        if self._tty and self._ticks:
            self._stream.write("\n")
            self._ticks = 0


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None, CertificateCheck]:
    """The API's root, its function key and the CA to trust: the arguments, else the local stack."""
    url: str | None = args.url or os.environ.get("IMAGEGEN_URL")
    key: str | None = args.key or os.environ.get("IMAGEGEN_KEY")
    if url:
        return url, key, args.ca_file or True
    if not STACK_FILE.exists():
        raise SystemExit("no API given: pass --url/--key (or IMAGEGEN_URL/IMAGEGEN_KEY), or run `make up`")
    try:
        stack = json.loads(STACK_FILE.read_text())
        return (
            str(stack["devhost"]["api"]),
            key or str(stack["devhost"]["function_key"]),
            args.ca_file or str(stack["ca_file"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"{STACK_FILE} does not describe a local stack ({error!r}); run `make up`") from None


def _targets(job: Job, out: Path) -> list[Path]:
    """`out` itself for one image when it names a file, else `<folder>/<job id>-<index>.<ext>`."""
    if out.suffix and len(job.images) == 1:
        return [out]
    folder = out.parent / out.stem if out.suffix else out
    return [folder / f"{job.id}-{index}.{image.extension}" for index, image in enumerate(job.images)]


def _failure(error: ApiError, stderr: TextIO) -> int:
    """Say why on stderr; the exit status tells a script which failure it was."""
    if isinstance(error, ContentFilteredError):
        stderr.write(f"refused by the content filter: {json.dumps(error.details)}\n")
        return EXIT_CONTENT_FILTERED
    if isinstance(error, ThrottledError):
        stderr.write(f"Azure OpenAI is busy; try again in {error.retry_after or 60:.0f} s\n")
        return EXIT_THROTTLED
    stderr.write(f"failed: {error.code} (HTTP {error.status}): {error.message}\n")
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagegen-client", description=(__doc__ or "").split("\n\n")[0])
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
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for the job"
    )
    return parser


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    url, key, verify = _endpoint(args)
    progress = Progress(err)
    with ImageGenClient(url, key, verify=verify) as client:
        out.write(f"POST {client.api_base}/images\n")
        out.flush()
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
        except ApiError as error:
            progress.finish()
            return _failure(error, err)
        progress.finish()
        out.write(f"job       {job.id} ({job.status}, {job.model or 'model not reported'})\n")
        if job.cost:
            out.write(
                f"cost      {job.cost['amount']} {job.cost['currency']} (prices as of {job.cost['prices_as_of']})\n"
            )
        for image, target in zip(job.images, _targets(job, args.out), strict=True):
            try:
                client.download(image, target)
            except ApiError as error:
                return _failure(error, err)
            out.write(f"image     {image.width}x{image.height} {image.content_type}, {image.bytes} bytes\n")
            out.write(f"SAS link  {image.url}\n")
            out.write(f"expires   {image.expires_at}\n")
            out.write(f"saved     {target}\n")
    return 0
