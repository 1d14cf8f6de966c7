"""A throw-away certificate authority and a localhost server certificate, made at stack start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_localhost_certs(directory: Path) -> TlsFiles:
    """Write ca.pem, server-cert.pem (chain) and server-key.pem for localhost and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="imagegen local stack")
    server = authority.issue_cert("localhost", "127.0.0.1", "::1")
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server-cert.pem",
        server_key=directory / "server-key.pem",
    )
    authority.cert_pem.write_to_path(str(files.ca_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
    files.server_cert.write_bytes(chain)
    return files
