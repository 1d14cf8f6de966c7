"""azure-storage-blob + ManagedIdentityCredential (via the MSI emulator) against Azurite over HTTPS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from devtools.services import AzuriteEndpoints, MsiEndpoint
from devtools.tokens import mint_access_token


@pytest.fixture
def service(azurite_oauth: AzuriteEndpoints, msi_env: MsiEndpoint) -> BlobServiceClient:
    assert azurite_oauth.ca_file is not None
    return BlobServiceClient(
        azurite_oauth.blob_url,
        credential=ManagedIdentityCredential(),
        connection_verify=str(azurite_oauth.ca_file),
    )


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_user_delegation_sas_reads_one_blob_and_nothing_else(
    service: BlobServiceClient, azurite_oauth: AzuriteEndpoints
) -> None:
    ca = str(azurite_oauth.ca_file)
    container = service.get_container_client(f"c{uuid.uuid4().hex[:12]}")
    container.create_container()
    payload = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    container.upload_blob("a/1.png", payload)
    container.upload_blob("a/2.png", b"other")

    now = datetime.now(UTC)
    key = service.get_user_delegation_key(now - timedelta(minutes=1), now + timedelta(hours=1))
    sas = generate_blob_sas(
        account_name="devstoreaccount1",
        container_name=container.container_name,
        blob_name="a/1.png",
        user_delegation_key=key,
        permission=BlobSasPermissions(read=True),
        expiry=now + timedelta(minutes=10),
        start=now - timedelta(minutes=1),
        protocol="https",
    )
    url = f"{azurite_oauth.blob_url}/{container.container_name}/a/1.png?{sas}"

    # Read works with no credential at all.
    response = requests.get(url, timeout=10, verify=ca)
    assert response.status_code == 200, response.text
    assert response.content == payload

    # Write and delete with the read-only link are refused.
    put = requests.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10, verify=ca)
    assert put.status_code == 403
    assert requests.delete(url, timeout=10, verify=ca).status_code == 403

    # The link does not open another blob.
    other = f"{azurite_oauth.blob_url}/{container.container_name}/a/2.png?{sas}"
    assert requests.get(other, timeout=10, verify=ca).status_code == 403

    # A tampered signature or a widened permission is refused.
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    tampered_sig = _with_query(url, sig=("B" if signature[0] == "A" else "A") + signature[1:])
    assert requests.get(tampered_sig, timeout=10, verify=ca).status_code == 403
    assert requests.get(_with_query(url, sp="rw"), timeout=10, verify=ca).status_code == 403

    # An expired link is refused.
    expired_sas = generate_blob_sas(
        account_name="devstoreaccount1",
        container_name=container.container_name,
        blob_name="a/1.png",
        user_delegation_key=key,
        permission=BlobSasPermissions(read=True),
        expiry=now - timedelta(seconds=30),
        start=now - timedelta(minutes=5),
        protocol="https",
    )
    expired = f"{azurite_oauth.blob_url}/{container.container_name}/a/1.png?{expired_sas}"
    assert requests.get(expired, timeout=10, verify=ca).status_code == 403


class _FixedToken:
    """A credential that always presents one pre-made token (to prove what Azurite refuses)."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token = AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return self._token


@pytest.mark.parametrize(
    ("resource", "lifetime"),
    [
        pytest.param("https://cognitiveservices.azure.com/", 3600, id="wrong-audience"),
        pytest.param("https://storage.azure.com/", -120, id="expired"),
    ],
)
def test_storage_refuses_a_bad_token(azurite_oauth: AzuriteEndpoints, resource: str, lifetime: int) -> None:
    token, expires_on = mint_access_token(resource=resource, client_id=None, lifetime_seconds=lifetime)
    client = BlobServiceClient(
        azurite_oauth.blob_url,
        credential=_FixedToken(token, expires_on + 10_000),
        connection_verify=str(azurite_oauth.ca_file),
    )
    with pytest.raises(HttpResponseError) as caught:
        client.get_container_client("anything").create_container()
    assert caught.value.status_code in (401, 403)


def test_msi_emulator_rejects_a_wrong_identity_header(msi: MsiEndpoint) -> None:
    response = requests.get(
        msi.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://storage.azure.com/"},
        headers={"X-IDENTITY-HEADER": "wrong"},
        timeout=5,
    )
    assert response.status_code == 401
    assert "access_token" not in response.text
