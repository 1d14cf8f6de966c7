"""imagegen.adapters.blob_store against a real Azurite: links expire, the delegation key is cached."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import requests
from azure.identity.aio import ManagedIdentityCredential

from devtools.services import AzuriteEndpoints, MsiEndpoint
from imagegen.adapters.blob_store import BlobStore
from imagegen.adapters.transport import CallCounter
from imagegen.domain.settings import StorageSettings


def _store(
    azurite: AzuriteEndpoints, clock_offset: timedelta = timedelta(), counter: CallCounter | None = None
) -> BlobStore:
    storage = StorageSettings(blob_service_uri=azurite.blob_url, queue_service_uri=azurite.queue_url)
    return BlobStore(
        storage,
        credential=ManagedIdentityCredential(),
        clock=lambda: datetime.now(UTC) + clock_offset,
        connection_verify=str(azurite.ca_file),
        call_counter=counter,
    )


async def test_an_expired_link_is_refused(azurite_oauth: AzuriteEndpoints, msi_env: MsiEndpoint) -> None:
    container = f"t{uuid.uuid4().hex[:10]}"
    store = _store(azurite_oauth)
    await store.upload(container, "a/0.png", b"\x89PNG-bytes", content_type="image/png", metadata={"k": "v"})
    fresh = await store.read_link(container, "a/0.png", ttl=timedelta(minutes=5))
    await store.close()
    # Minted two hours ago with a one-hour lifetime: expired an hour ago.
    past = _store(azurite_oauth, clock_offset=-timedelta(hours=2))
    expired = await past.read_link(container, "a/0.png", ttl=timedelta(hours=1))
    await past.close()
    assert expired.expires_at < datetime.now(UTC)
    ca = str(azurite_oauth.ca_file)
    assert requests.get(fresh.url, timeout=10, verify=ca).content == b"\x89PNG-bytes"
    assert requests.get(expired.url, timeout=10, verify=ca).status_code == 403


async def test_the_delegation_key_is_fetched_once_for_many_links(
    azurite_oauth: AzuriteEndpoints, msi_env: MsiEndpoint
) -> None:
    container = f"t{uuid.uuid4().hex[:10]}"
    counter = CallCounter()  # an azure-core policy: every call the store makes, once, by kind
    store = _store(azurite_oauth, counter=counter)
    await store.upload(container, "x.png", b"data", content_type="image/png", metadata={})
    links = [await store.read_link(container, "x.png", ttl=timedelta(minutes=60)) for _ in range(20)]
    await store.close()
    assert counter.by_kind["userdelegationkey"] == 1
    assert len({link.url for link in links}) >= 1
    assert requests.get(links[-1].url, timeout=10, verify=str(azurite_oauth.ca_file)).status_code == 200


async def test_conditional_writes_refuse_a_stale_etag(
    azurite_oauth: AzuriteEndpoints, msi_env: MsiEndpoint
) -> None:
    from imagegen.domain.ports import BlobAlreadyExists, BlobChanged

    container = f"t{uuid.uuid4().hex[:10]}"
    store = _store(azurite_oauth)
    etag = await store.create_json(container, "j.json", {"v": 1})
    try:
        await store.create_json(container, "j.json", {"v": 2})
        raise AssertionError("create over an existing record must fail")
    except BlobAlreadyExists:
        pass
    newer = await store.replace_json(container, "j.json", {"v": 3}, etag=etag)
    try:
        await store.replace_json(container, "j.json", {"v": 4}, etag=etag)
        raise AssertionError("a stale ETag must lose")
    except BlobChanged:
        pass
    current = await store.read_json(container, "j.json")
    await store.close()
    assert current.document == {"v": 3} and current.etag == newer
