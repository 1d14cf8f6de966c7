"""The dev host's queue trigger over an identity-based connection: Azurite (HTTPS, --oauth basic)
with a token from the managed-identity emulator, the CA passed through SSL_CERT_FILE."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import QueueServiceClient

from devtools.certs import TlsFiles
from devtools.services import AzuriteEndpoints, MsiEndpoint, start_devhost

APP_ROOT = Path(__file__).parent / "devhost_apps" / "basic"

pytestmark = pytest.mark.integration


def test_queue_trigger_with_managed_identity_connection(
    azurite_oauth: AzuriteEndpoints, msi_env: MsiEndpoint, tls_files: TlsFiles, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    queues = {
        "QUEUE_IN": f"dh-id-in-{suffix}",
        "QUEUE_SEEN": f"dh-id-seen-{suffix}",
        "QUEUE_FAIL": f"dh-id-fail-{suffix}",
        "QUEUE_SLOW": f"dh-id-slow-{suffix}",
    }
    client_id = str(uuid.uuid4())
    settings = {
        "AzureWebJobsStorage__queueServiceUri": azurite_oauth.queue_url,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": client_id,
        "IDENTITY_ENDPOINT": msi_env.identity_endpoint,
        "IDENTITY_HEADER": msi_env.identity_header,
        "SSL_CERT_FILE": str(tls_files.ca_cert),
        "REQUESTS_CA_BUNDLE": str(tls_files.ca_cert),
        "RECORD_DIR": str(tmp_path),
        **queues,
    }
    # The test's own client uses the same identity (msi_env points azure-identity at the emulator).
    service = QueueServiceClient(
        azurite_oauth.queue_url,
        credential=ManagedIdentityCredential(client_id=client_id),
        connection_verify=str(tls_files.ca_cert),
    )
    queue_in = service.get_queue_client(queues["QUEUE_IN"])
    seen = service.get_queue_client(queues["QUEUE_SEEN"])
    queue_in.create_queue()
    seen.create_queue()

    process, _ = start_devhost(
        log_dir=tmp_path / "logs",
        settings=settings,
        function_key="identity-test-key",
        script_root=APP_ROOT,
        # Nothing from the test runner's storage settings may leak into the identity path.
        extra_env={"AzureWebJobsStorage": ""},
    )
    try:
        queue_in.send_message(base64.b64encode(b"via identity").decode())
        deadline = time.monotonic() + 15
        records = []
        while not records and time.monotonic() < deadline:
            records = list(seen.receive_messages(max_messages=32))
            time.sleep(0.1)
        assert records, process.log_text()[-3000:]
        record = json.loads(base64.b64decode(records[0].content))
        assert record["body"] == "via identity"
        assert record["dequeue_count"] == 1
        assert f"{azurite_oauth.queue_url}, identity" in process.log_text()
    finally:
        process.stop()
