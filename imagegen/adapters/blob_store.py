"""Blob Storage: images, job records with ETag-conditional writes, and read-only SAS links.

Identity mode (Azure, and the local stack's HTTPS Azurite) signs links with a user-delegation key,
cached and renewed before it expires. Connection-string mode (local only) signs with the account key.
Every storage failure leaves this module as imagegen.domain.errors.StorageError, except the three
conditions callers act on: BlobNotFound, BlobAlreadyExists and BlobChanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    BlobSasPermissions,
    ContentSettings,
    UserDelegationKey,
    generate_blob_sas,
)
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

from imagegen.adapters.transport import (
    PROBE_CALL_OPTIONS,
    STORAGE_RETRY,
    CallCounter,
    connection_options,
    counted_retry,
)
from imagegen.domain.errors import StorageError
from imagegen.domain.jsontext import NotJson, parse_json
from imagegen.domain.ports import (
    BlobAlreadyExists,
    BlobChanged,
    BlobNotFound,
    JsonBlob,
    SignedLink,
    StoredBlob,
)
from imagegen.domain.settings import StorageSettings, parse_connection_string

log = logging.getLogger(__name__)

# A delegation key is fetched for a day (at most 7 days, Azure's limit) and renewed once less than
# one link lifetime plus this margin is left, so every link it signs outlives its own expiry.
DELEGATION_KEY_LIFETIME = timedelta(days=1)
DELEGATION_KEY_RENEW_MARGIN = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)


class BlobStore:
    def __init__(
        self,
        storage: StorageSettings,
        *,
        credential: AsyncTokenCredential | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        connection_verify: str | None = None,
        call_counter: CallCounter | None = None,
    ) -> None:
        """`connection_verify`: a CA bundle path for the transport (the Functions host needs none; the
        aiohttp transport otherwise trusts SSL_CERT_FILE as read when aiohttp was imported).
        `call_counter`: an azure-core policy that counts each call once, before retries (benchmarks)."""
        if storage.uses_identity and credential is None:
            raise ValueError("identity-based storage needs a credential")
        self._storage = storage
        self._credential = credential
        self._clock = clock
        self._connection_verify = connection_verify
        # Links are HTTPS-only when the endpoint is HTTPS; connection-string mode signs with the key.
        self._link_protocol = "https" if storage.blob_service_uri.startswith("https://") else "https,http"
        self._account_key = (
            parse_connection_string(storage.connection_string)["AccountKey"]
            if storage.connection_string is not None
            else None
        )
        self._client: BlobServiceClient | None = None
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_key_expiry: datetime | None = None
        self._key_lock = asyncio.Lock()
        self._ready_containers: set[str] = set()
        self._call_counter = call_counter

    @property
    def client(self) -> BlobServiceClient:
        if self._client is None:
            options: dict[str, Any] = {
                "retry_policy": counted_retry(ExponentialRetry, self._call_counter, STORAGE_RETRY),
                **connection_options(self._connection_verify, read_timeout=60),
            }
            if self._storage.connection_string is not None:
                self._client = BlobServiceClient.from_connection_string(
                    self._storage.connection_string, **options
                )
            else:
                self._client = BlobServiceClient(
                    self._storage.blob_service_uri, credential=self._credential, **options
                )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ensure_container(self, container: str) -> None:
        if container in self._ready_containers:
            return
        try:
            await self.client.create_container(container)
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise _storage_error("create a container", error) from None
        self._ready_containers.add(container)

    async def check_reachable(self, container: str) -> None:
        """For health checks (one quick attempt): the container exists and can be read with our credential."""
        try:
            await self.client.get_container_client(container).get_container_properties(**PROBE_CALL_OPTIONS)
        except ResourceNotFoundError:
            await self.ensure_container(container)
        except AzureError as error:
            raise _storage_error("reach Blob Storage", error) from None

    async def upload(
        self, container: str, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        await self.ensure_container(container)
        blob = self.client.get_blob_client(container, name)
        try:
            await blob.upload_blob(
                data,
                overwrite=True,
                content_settings=ContentSettings(
                    content_type=content_type, cache_control="private, max-age=3600"
                ),
                metadata=dict(metadata),
            )
        except AzureError as error:
            raise _storage_error("upload an image", error) from None

    async def stored(self, container: str, name: str) -> StoredBlob | None:
        try:
            properties = await self.client.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise _storage_error("check a blob", error) from None
        return StoredBlob(
            content_type=str(properties.content_settings.content_type or "application/octet-stream"),
            size=int(properties.size),
            metadata=dict(properties.metadata or {}),
        )

    # --- JSON records with ETags --------------------------------------------------------------

    async def create_json(self, container: str, name: str, document: Mapping[str, Any]) -> str:
        """Create only if absent (If-None-Match: *); returns the ETag."""
        await self.ensure_container(container)
        blob = self.client.get_blob_client(container, name)
        try:
            result = await blob.upload_blob(
                _json_bytes(document),
                overwrite=False,
                content_settings=ContentSettings(content_type="application/json"),
            )
        except ResourceExistsError:
            raise BlobAlreadyExists(name) from None
        except AzureError as error:
            raise _storage_error("write a job record", error) from None
        return str(result["etag"])

    async def read_json(self, container: str, name: str) -> JsonBlob:
        blob = self.client.get_blob_client(container, name)
        try:
            downloader = await blob.download_blob()
            body = await downloader.readall()
        except ResourceNotFoundError:
            raise BlobNotFound(name) from None
        except AzureError as error:
            raise _storage_error("read a job record", error) from None
        try:
            document = parse_json(body)
        except NotJson as error:
            raise StorageError(f"a job record is not readable ({error.reason})") from None
        if not isinstance(document, dict):
            raise StorageError("a job record is not a JSON object")
        return JsonBlob(document, str(downloader.properties.etag))

    async def replace_json(self, container: str, name: str, document: Mapping[str, Any], *, etag: str) -> str:
        """Replace only if unchanged since `etag` (If-Match); returns the new ETag. Never a wildcard:
        `*` would match any version, so it is refused."""
        if not etag or etag.strip() == "*":
            raise ValueError("replace_json needs the ETag that was read, not a wildcard")
        blob = self.client.get_blob_client(container, name)
        try:
            result = await blob.upload_blob(
                _json_bytes(document),
                overwrite=True,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
                content_settings=ContentSettings(content_type="application/json"),
            )
        except (ResourceModifiedError, ResourceExistsError):
            raise BlobChanged(name) from None
        except ResourceNotFoundError:
            raise BlobNotFound(name) from None
        except AzureError as error:
            if getattr(error, "status_code", None) == 412:
                raise BlobChanged(name) from None
            raise _storage_error("update a job record", error) from None
        return str(result["etag"])

    # --- links ----------------------------------------------------------------------------------

    async def read_link(self, container: str, name: str, *, ttl: timedelta) -> SignedLink:
        """A read-only link to one blob, valid for `ttl` (HTTPS-only when the endpoint is HTTPS)."""
        now = self._clock()
        expires_at = (now + ttl).replace(microsecond=0)
        common: dict[str, Any] = {
            "account_name": self.client.account_name,
            "container_name": container,
            "blob_name": name,
            "permission": BlobSasPermissions(read=True),
            "expiry": expires_at,
            "start": now - CLOCK_SKEW,
            "protocol": self._link_protocol,
        }
        if self._account_key is not None:
            token = generate_blob_sas(account_key=self._account_key, **common)
        else:
            token = generate_blob_sas(user_delegation_key=await self._user_delegation_key(ttl), **common)
        url = f"{self.client.get_blob_client(container, name).url}?{token}"
        return SignedLink(url, expires_at)

    async def _user_delegation_key(self, ttl: timedelta) -> UserDelegationKey:
        async with self._key_lock:
            now = self._clock()
            if (
                self._delegation_key is not None
                and self._delegation_key_expiry is not None
                and self._delegation_key_expiry - now > ttl + DELEGATION_KEY_RENEW_MARGIN
            ):
                return self._delegation_key
            lifetime = min(
                max(DELEGATION_KEY_LIFETIME, ttl + 2 * DELEGATION_KEY_RENEW_MARGIN), timedelta(days=7)
            )
            expiry = now + lifetime
            try:
                key = await self.client.get_user_delegation_key(now - CLOCK_SKEW, expiry)
            except AzureError as error:
                raise _storage_error("get a user delegation key", error) from None
            self._delegation_key, self._delegation_key_expiry = key, expiry
            return key


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _storage_error(action: str, error: AzureError) -> StorageError:
    status = getattr(error, "status_code", None)
    log.warning("Blob Storage: could not %s (%s, status %s)", action, error.__class__.__name__, status)
    return StorageError(f"Blob Storage is unavailable: could not {action}")
