"""Storage queue clients for a binding's `connection` setting, resolved the way the host does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue.aio import QueueServiceClient

from imagegen.adapters.transport import aiohttp_transport

CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
# What the host expands UseDevelopmentStorage=true to: Azurite's documented, public account and key.
DEVELOPMENT_STORAGE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


class ConnectionSettingError(ValueError):
    """A binding's connection is not configured (the message names the settings looked for)."""


@dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to reach the queue service (no secret in `description`)."""

    connection_name: str
    connection_string: str | None
    queue_service_uri: str | None
    credential_kind: str | None  # "managedidentity" or None (DefaultAzureCredential)
    client_id: str | None
    ca_file: str | None

    @property
    def description(self) -> str:
        if self.connection_string is not None:
            return f"{self.connection_name} (connection string)"
        return f"{self.connection_name} ({self.queue_service_uri}, identity)"


def ca_file_from(environ: Mapping[str, str]) -> str | None:
    """The CA bundle to verify TLS with: the aiohttp transport ignores REQUESTS_CA_BUNDLE, so it is
    passed explicitly as `connection_verify`."""
    for name in CA_BUNDLE_VARIABLES:
        if environ.get(name):
            return environ[name]
    return None


def resolve_connection(connection_name: str, environ: Mapping[str, str]) -> ConnectionSpec:
    """`<name>` (or `AzureWebJobs<name>`) as a connection string, else identity-based settings
    `<name>__queueServiceUri` (or `__accountName`), `__credential`, `__clientId`."""
    ca_file = ca_file_from(environ)
    prefixes = [connection_name]
    if not connection_name.startswith("AzureWebJobs"):
        prefixes.append(f"AzureWebJobs{connection_name}")
    for prefix in prefixes:
        value = environ.get(prefix, "").strip()
        if value.replace(" ", "").lower().rstrip(";") == DEVELOPMENT_STORAGE.lower():
            value = DEVELOPMENT_STORAGE_CONNECTION_STRING
        if value:
            return ConnectionSpec(connection_name, value, None, None, None, ca_file)
    for prefix in prefixes:
        uri = environ.get(f"{prefix}__queueServiceUri", "").strip()
        account = environ.get(f"{prefix}__accountName", "").strip()
        if not uri and account:
            uri = f"https://{account}.queue.core.windows.net"
        if uri:
            credential = environ.get(f"{prefix}__credential", "").strip().lower() or None
            if credential not in (None, "managedidentity"):
                raise ConnectionSettingError(
                    f"{prefix}__credential must be 'managedidentity' (or unset), not {credential!r}"
                )
            client_id = environ.get(f"{prefix}__clientId", "").strip() or None
            return ConnectionSpec(connection_name, None, uri.rstrip("/"), credential, client_id, ca_file)
    raise ConnectionSettingError(
        f"storage connection {connection_name!r} is not configured: set {connection_name} to a "
        f"connection string or {connection_name}__queueServiceUri (+ __credential, __clientId)"
    )


class QueueServices:
    """One async QueueServiceClient (and credential) per connection setting name, closed together."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._clients: dict[str, QueueServiceClient] = {}
        self._credentials: list[AsyncTokenCredential] = []
        self._specs: dict[str, ConnectionSpec] = {}

    def spec(self, connection_name: str) -> ConnectionSpec:
        if connection_name not in self._specs:
            self._specs[connection_name] = resolve_connection(connection_name, self._environ)
        return self._specs[connection_name]

    def service(self, connection_name: str) -> QueueServiceClient:
        if connection_name in self._clients:
            return self._clients[connection_name]
        spec = self.spec(connection_name)
        # One SSL context for the CA bundle (connection_verify=<path> would build one per request and
        # defeat connection pooling); the default trust store when no bundle is configured.
        transport: dict[str, Any] = {}
        if spec.ca_file:
            transport["transport"] = aiohttp_transport(spec.ca_file, connection_timeout=10, read_timeout=60)
        client: QueueServiceClient
        if spec.connection_string is not None:
            try:
                client = QueueServiceClient.from_connection_string(spec.connection_string, **transport)
            except ValueError as error:  # the SDK's message names no secret
                raise ConnectionSettingError(f"{connection_name}: {error}") from error
        else:
            assert spec.queue_service_uri is not None
            credential: AsyncTokenCredential
            if spec.credential_kind == "managedidentity":
                credential = ManagedIdentityCredential(client_id=spec.client_id)
            else:
                credential = DefaultAzureCredential(managed_identity_client_id=spec.client_id)
            self._credentials.append(credential)
            client = QueueServiceClient(spec.queue_service_uri, credential=credential, **transport)
        self._clients[connection_name] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        for credential in self._credentials:
            await credential.close()
        self._clients.clear()
        self._credentials.clear()
