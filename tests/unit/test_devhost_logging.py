"""The dev host shows azure-core's INFO request lines; they must never carry a SAS signature or an
Authorization value. aiohttp's access log (which would print `?code=`) stays quiet."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobClient

from devtools.devhost.host import ACCESS_LOGGER, configure_logging

HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
SIGNATURE = "c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ%3D"
SAS_URL = (
    "https://account.blob.core.windows.net/images/job-1/0.png"
    f"?sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&skoid=oid&sig={SIGNATURE}"
)
BEARER = "Bearer eyJhbGciOiJSUzI1NiJ9.secret-token-body.signature"
ACCOUNT_KEY = "a2V5LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ="


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == HTTP_LOGGER)


def test_http_logging_policy_redacts_the_signature_and_authorization(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=HTTP_LOGGER)
    request = HttpRequest(
        "GET",
        SAS_URL + "&api-version=2024-08-04",
        headers={"Authorization": BEARER, "x-ms-copy-source": SAS_URL, "x-ms-version": "2024-08-04"},
    )
    HttpLoggingPolicy().on_request(PipelineRequest(request, PipelineContext(None)))
    text = logged_text(caplog)
    assert "Request URL" in text
    assert SIGNATURE not in text
    assert "sig=REDACTED" in text  # query values outside the allow-list are replaced
    assert "api-version=2024-08-04" in text  # the one allow-listed query parameter
    assert "eyJ" not in text
    assert "'Authorization': 'REDACTED'" in text
    assert "'x-ms-copy-source': 'REDACTED'" in text


class _NoNetwork(HttpTransport):  # type: ignore[type-arg]
    """A transport that fails every request: the pipeline logs it first, nothing leaves the test."""

    def __enter__(self) -> _NoNetwork:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("no network in unit tests")


def test_a_storage_client_logs_sas_and_shared_key_requests_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=HTTP_LOGGER)
    with_sas = BlobClient.from_blob_url(SAS_URL, transport=_NoNetwork(), retry_total=0)
    with pytest.raises(ServiceRequestError):
        with_sas.get_blob_properties()
    with_key = BlobClient(
        "https://account.blob.core.windows.net",
        "images",
        "job-1/0.png",
        credential={"account_name": "account", "account_key": ACCOUNT_KEY},
        transport=_NoNetwork(),
        retry_total=0,
    )
    with pytest.raises(ServiceRequestError):
        with_key.get_blob_properties()
    text = logged_text(caplog)
    assert text.count("Request URL") == 2
    assert SIGNATURE not in text
    assert "SharedKey" not in text
    assert "'Authorization': 'REDACTED'" in text


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("azure", HTTP_LOGGER, ACCESS_LOGGER)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_shows_azure_core_and_keeps_the_access_log_quiet() -> None:
    configure_logging()  # the dev host used to set "azure" to WARNING here
    assert logging.getLogger(HTTP_LOGGER).isEnabledFor(logging.INFO)
    assert logging.getLogger("azure.identity").isEnabledFor(logging.INFO)
    assert not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
