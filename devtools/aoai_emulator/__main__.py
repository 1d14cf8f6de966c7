"""`python -m devtools.aoai_emulator --host H --port P [--api-key K] [--tls-cert C --tls-key K] [...]`."""

from __future__ import annotations

import argparse
import logging
import ssl

from aiohttp import web

from devtools.aoai_emulator import __doc__ as package_doc
from devtools.aoai_emulator.app import create_app
from devtools.aoai_emulator.images import IMAGE_DETAILS
from devtools.aoai_emulator.state import DEFAULT_DEPLOYMENTS, DEFAULT_FILTER_WORDS, Config


def _deployment(value: str) -> tuple[str, str]:
    name, sep, model = value.partition("=")
    if not sep or not name or not model:
        raise argparse.ArgumentTypeError("use NAME=MODEL, e.g. images=gpt-image-2")
    return name, model


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="python -m devtools.aoai_emulator",
        description=package_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7081)
    parser.add_argument("--api-key", help="accepted api-key header value; without it only Entra tokens work")
    parser.add_argument("--tls-cert", help="PEM certificate chain (serve HTTPS)")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--deployment",
        action="append",
        type=_deployment,
        metavar="NAME=MODEL",
        help=f"a deployment (repeatable); default {' '.join(f'{k}={v}' for k, v in DEFAULT_DEPLOYMENTS.items())}",
    )
    parser.add_argument(
        "--latency", type=float, default=defaults.latency_seconds, help="sync generation seconds"
    )
    parser.add_argument(
        "--legacy-queue", type=float, default=defaults.legacy_queue_seconds, help="seconds notRunning"
    )
    parser.add_argument(
        "--legacy-latency", type=float, default=defaults.legacy_latency_seconds, help="seconds running"
    )
    parser.add_argument(
        "--retry-after", type=float, default=defaults.retry_after_seconds, help="legacy retry-after"
    )
    parser.add_argument(
        "--result-ttl", type=float, default=defaults.result_ttl_seconds, help="result URL seconds"
    )
    parser.add_argument(
        "--hang-seconds", type=float, default=defaults.hang_seconds, help="default hang fault"
    )
    parser.add_argument(
        "--filter-word",
        action="append",
        metavar="WORD",
        help=f"content-filter a prompt containing WORD (repeatable); default {list(DEFAULT_FILTER_WORDS)}",
    )
    parser.add_argument("--filter-output-index", type=int, help="filter this output image index")
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        metavar="N",
        help="RPM quota of every deployment, enforced as N//6 (at least 1) requests per sliding 10 s; "
        "0 throttles every request (per-deployment values: admin config deployment_requests_per_minute)",
    )
    parser.add_argument(
        "--region",
        default=defaults.region,
        metavar="NAME",
        help="x-ms-region header value (run one instance per port and --region to emulate several regions)",
    )
    parser.add_argument(
        "--image-detail",
        choices=IMAGE_DETAILS,
        default=defaults.image_detail,
        help="smooth: small gradient images; noise: incompressible, realistic size (~3 MB per 1024x1024 PNG)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    config = Config()
    patch: dict[str, object] = {
        "latency_seconds": args.latency,
        "legacy_queue_seconds": args.legacy_queue,
        "legacy_latency_seconds": args.legacy_latency,
        "retry_after_seconds": args.retry_after,
        "result_ttl_seconds": args.result_ttl,
        "hang_seconds": args.hang_seconds,
        "filter_output_index": args.filter_output_index,
        "requests_per_minute": args.requests_per_minute,
        "region": args.region,
        "image_detail": args.image_detail,
    }
    if args.deployment:
        patch["deployments"] = dict(args.deployment)
    if args.filter_word:
        patch["content_filter_words"] = list(args.filter_word)
    config.update(patch)
    return config


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    app = create_app(config, api_key=args.api_key)
    logging.getLogger("aoai_emulator").info(
        "serving on %s://%s:%s auth=%s deployments=%s",
        "https" if ssl_context else "http",
        args.host,
        args.port,
        "api-key+entra" if args.api_key else "entra-only",
        config.deployments,
    )
    web.run_app(app, host=args.host, port=args.port, ssl_context=ssl_context, print=None, access_log=None)


if __name__ == "__main__":
    main()
