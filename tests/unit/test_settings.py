from __future__ import annotations

import pytest

from imagegen.domain.catalog import ApiStyle
from imagegen.domain.errors import SettingsError
from imagegen.domain.settings import Settings

IDENTITY = {
    "AZURE_OPENAI_ENDPOINT": "https://my-aoai.openai.azure.com/",
    "AZURE_OPENAI_DEPLOYMENT": "gpt-image-2",
    "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
}


def test_identity_settings_with_defaults() -> None:
    settings = Settings.from_env(IDENTITY)
    assert settings.openai_endpoint == "https://my-aoai.openai.azure.com"
    assert settings.api_style is ApiStyle.V1
    assert settings.api_version == "preview"
    assert settings.openai_scope == "https://ai.azure.com/.default"
    assert settings.model == "gpt-image-2"
    assert settings.storage.uses_identity
    assert settings.storage.client_id == "11111111-2222-3333-4444-555555555555"
    assert settings.sas_ttl_minutes == 60
    assert settings.api_key is None


def test_connection_string_mode_reads_endpoints() -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:7081",
        "AZURE_OPENAI_DEPLOYMENT": "d",
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:1/a;QueueEndpoint=http://127.0.0.1:2/a;",
    }
    settings = Settings.from_env(env)
    assert not settings.storage.uses_identity
    assert settings.storage.blob_service_uri == "http://127.0.0.1:1/a"
    assert "AccountKey" not in repr(settings)


def test_use_development_storage_means_azurite_defaults() -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "http://x",
        "AZURE_OPENAI_DEPLOYMENT": "d",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    assert Settings.from_env(env).storage.blob_service_uri == "http://127.0.0.1:10000/devstoreaccount1"


def test_secrets_never_appear_in_repr() -> None:
    settings = Settings.from_env(
        {
            **IDENTITY,
            "AZURE_OPENAI_API_KEY": "sekrit-key",
            "WEBHOOK_SECRET": "a-webhook-secret-of-32-bytes-!!",
        }
    )
    assert "sekrit-key" not in repr(settings)
    assert "webhook-secret" not in repr(settings)


@pytest.mark.parametrize("model", ["FLUX-1.1-pro", "flux.1-kontext-pro", "FLUX.1-Kontext-pro"])
def test_flux_follows_its_docs_deployments_path_preview_and_cognitive_services_scope(model: str) -> None:
    settings = Settings.from_env({**IDENTITY, "AZURE_OPENAI_MODEL": model})
    assert settings.api_style is ApiStyle.DEPLOYMENTS
    assert settings.api_version == "preview"
    assert settings.openai_scope == "https://cognitiveservices.azure.com/.default"
    assert settings.model == model.lower()
    assert settings.catalog_model.answers == "url"


def test_the_scope_and_api_version_are_overridable() -> None:
    settings = Settings.from_env(
        {
            **IDENTITY,
            "AZURE_OPENAI_MODEL": "FLUX-1.1-pro",
            "AZURE_OPENAI_SCOPE": "https://ai.azure.com/.default",
            "AZURE_OPENAI_API_VERSION": "2026-01-01-preview",
        }
    )
    assert (settings.openai_scope, settings.api_version) == (
        "https://ai.azure.com/.default",
        "2026-01-01-preview",
    )


def test_gpt_image_models_may_use_the_deployments_path_too() -> None:
    settings = Settings.from_env({**IDENTITY, "AZURE_OPENAI_API_STYLE": "Deployments"})
    assert settings.api_style is ApiStyle.DEPLOYMENTS
    assert settings.api_version == "2025-04-01-preview"


def test_the_legacy_dialect_is_gone() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**IDENTITY, "AZURE_OPENAI_API_STYLE": "legacy"})
    assert caught.value.name == "AZURE_OPENAI_API_STYLE"
    assert "v1, deployments" in str(caught.value)


def test_image_prices_override_the_shipped_table() -> None:
    settings = Settings.from_env(
        {
            **IDENTITY,
            "IMAGE_PRICES": '{"gpt-image-2": {"per_image": 0.25, "currency": "eur", "as_of": "2026-11-01"}}',
        }
    )
    cost = settings.prices.cost("gpt-image-2", None, 2)
    assert cost is not None and cost.to_json() == {
        "amount": 0.5,
        "currency": "EUR",
        "prices_as_of": "2026-11-01",
    }


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"AZURE_OPENAI_ENDPOINT": ""}, "AZURE_OPENAI_ENDPOINT"),
        ({"AZURE_OPENAI_ENDPOINT": "not a url"}, "AZURE_OPENAI_ENDPOINT"),
        ({"AZURE_OPENAI_API_STYLE": "soap"}, "AZURE_OPENAI_API_STYLE"),
        ({"AZURE_OPENAI_DEPLOYMENT": ""}, "AZURE_OPENAI_DEPLOYMENT"),
        ({"AZURE_OPENAI_MODEL": "midjourney"}, "AZURE_OPENAI_MODEL"),
        ({"AZURE_OPENAI_API_STYLE": "v1", "AZURE_OPENAI_MODEL": "FLUX-1.1-pro"}, "AZURE_OPENAI_API_STYLE"),
        ({"IMAGE_PRICES": "{not json"}, "IMAGE_PRICES"),
        ({"IMAGE_PRICES": '{"gpt-image-2": {"per_image": -1}}'}, "IMAGE_PRICES"),
        ({"IMAGE_PRICES": '{"gpt-image-2": {"per_image": 1, "currency": "dollars"}}'}, "IMAGE_PRICES"),
        ({"IMAGE_PRICES": '{"gpt-image-2": {"price": 1}}'}, "IMAGE_PRICES"),
        ({"IMAGE_PRICES": '{"gpt-image-2": {}}'}, "IMAGE_PRICES"),
        ({"IMAGE_PRICES": "[]"}, "IMAGE_PRICES"),
        ({"SAS_TTL_MINUTES": "0"}, "SAS_TTL_MINUTES"),
        ({"SAS_TTL_MINUTES": str(7 * 24 * 60 + 1)}, "SAS_TTL_MINUTES"),
        ({"SAS_TTL_MINUTES": "an hour"}, "SAS_TTL_MINUTES"),
        ({"MAX_WAIT_SECONDS": "230"}, "MAX_WAIT_SECONDS"),
        ({"UPSTREAM_TIMEOUT_SECONDS": "-1"}, "UPSTREAM_TIMEOUT_SECONDS"),
        ({"IMAGES_CONTAINER": "Images_Bad"}, "IMAGES_CONTAINER"),
        ({"AzureWebJobsStorage__queueServiceUri": ""}, "AzureWebJobsStorage__queueServiceUri"),
        ({"AzureWebJobsStorage__credential": "connectionstring"}, "AzureWebJobsStorage__credential"),
        ({"AzureWebJobsStorage__blobServiceUri": ""}, "AzureWebJobsStorage"),
        ({"ALLOW_LOCAL_WEBHOOKS": "maybe"}, "ALLOW_LOCAL_WEBHOOKS"),
    ],
)
def test_a_bad_setting_is_named(changes: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**IDENTITY, **changes})
    assert caught.value.name == named
    assert named in str(caught.value)


@pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "AZURE_OPENAI_API_KEY"])
@pytest.mark.parametrize(
    "reference",
    [
        "@Microsoft.KeyVault(SecretUri=https://kv-1.vault.azure.net/secrets/webhook-secret)",
        "@Microsoft.KeyVault(VaultName=kv-1;SecretName=webhook-secret)",
        "@microsoft.keyvault(SecretUri=https://kv-1.vault.azure.net/secrets/x/0123)",
    ],
)
def test_an_unresolved_key_vault_reference_stops_start_up(name: str, reference: str) -> None:
    """App Service hands the reference text itself to the app when it cannot resolve it: signing
    webhooks or calling Azure OpenAI with it would fail on every job, so start-up names it instead."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**IDENTITY, name: reference})
    assert caught.value.name == name
    assert "Key Vault reference" in str(caught.value)
    assert "kv-1" not in str(caught.value)


@pytest.mark.parametrize(
    ("model", "date_text", "replacement"),
    [
        ("gpt-image-1", "2026-10-23", "gpt-image-2"),
        ("dall-e-3", "2026-03-04", "gpt-image-2"),
        ("dall-e-2", "2025-01-27", "gpt-image-2"),
    ],
)
def test_a_retired_model_stops_start_up_naming_its_date_and_replacement(
    model: str, date_text: str, replacement: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**IDENTITY, "AZURE_OPENAI_MODEL": model})
    assert caught.value.name == "AZURE_OPENAI_MODEL"
    assert model in str(caught.value) and date_text in str(caught.value) and replacement in str(caught.value)


def test_a_model_within_60_days_of_retirement_starts_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import date

    import imagegen.domain.settings as settings_module

    monkeypatch.setattr(settings_module, "_today", lambda: date(2027, 5, 1))  # 46 days before 2027-06-16
    monkeypatch.setattr(settings_module, "_warned", set())
    for _ in range(2):
        settings = Settings.from_env({**IDENTITY, "AZURE_OPENAI_MODEL": "gpt-image-1.5"})
    assert settings.model == "gpt-image-1.5"
    warnings = [r for r in caplog.records if "retires on 2027-06-16" in r.getMessage()]
    assert len(warnings) == 1 and "gpt-image-2" in warnings[0].getMessage()
    monkeypatch.setattr(settings_module, "_today", lambda: date(2027, 6, 16))
    with pytest.raises(SettingsError):
        Settings.from_env({**IDENTITY, "AZURE_OPENAI_MODEL": "gpt-image-1.5"})
