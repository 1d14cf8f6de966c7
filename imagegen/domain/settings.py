"""The one place that reads configuration: a frozen Settings object built once from the environment.

Every name the app reads is a constant here; infra/ sets exactly DEPLOYED_SETTING_NAMES (a test
compares them). A missing or malformed setting raises SettingsError naming it, at start-up.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from imagegen.domain.backends import Backend
from imagegen.domain.catalog import (
    ApiStyle,
    CatalogModel,
    Dialect,
    Lifecycle,
    model_entry,
    retirement_message,
)
from imagegen.domain.errors import SettingsError
from imagegen.domain.pricing import PriceTable, PriceTableError, shipped_prices

log = logging.getLogger(__name__)

# Names of environment variables / app settings.
ENV_OPENAI_ENDPOINT = "AZURE_OPENAI_ENDPOINT"
ENV_OPENAI_API_STYLE = "AZURE_OPENAI_API_STYLE"
ENV_OPENAI_DEPLOYMENT = "AZURE_OPENAI_DEPLOYMENT"
ENV_OPENAI_MODEL = "AZURE_OPENAI_MODEL"
ENV_OPENAI_API_VERSION = "AZURE_OPENAI_API_VERSION"
ENV_OPENAI_API_KEY = "AZURE_OPENAI_API_KEY"
ENV_OPENAI_SCOPE = "AZURE_OPENAI_SCOPE"
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_STORAGE = "AzureWebJobsStorage"
ENV_STORAGE_BLOB_URI = "AzureWebJobsStorage__blobServiceUri"
ENV_STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"
ENV_STORAGE_CREDENTIAL = "AzureWebJobsStorage__credential"
ENV_STORAGE_CLIENT_ID = "AzureWebJobsStorage__clientId"
ENV_IMAGES_CONTAINER = "IMAGES_CONTAINER"
ENV_JOBS_CONTAINER = "JOBS_CONTAINER"
ENV_SAS_TTL_MINUTES = "SAS_TTL_MINUTES"
ENV_MAX_WAIT_SECONDS = "MAX_WAIT_SECONDS"
ENV_UPSTREAM_TIMEOUT_SECONDS = "UPSTREAM_TIMEOUT_SECONDS"
ENV_JOB_LEASE_SECONDS = "JOB_LEASE_SECONDS"
ENV_WEBHOOK_SECRET = "WEBHOOK_SECRET"  # noqa: S105 - a setting name, not a secret
ENV_ALLOW_LOCAL_WEBHOOKS = "ALLOW_LOCAL_WEBHOOKS"
ENV_IMAGE_PRICES = "IMAGE_PRICES"
ENV_PUBLIC_API_BASE = "PUBLIC_API_BASE"
ENV_SDK_LOG_LEVEL = "AZURE_SDK_LOG_LEVEL"
ENV_EASY_AUTH = "EASY_AUTH"
ENV_CALLER_DAILY_IMAGES = "CALLER_DAILY_IMAGES"
ENV_IDEMPOTENCY_SECRET = "IDEMPOTENCY_SECRET"  # noqa: S105 - a setting name, not a secret
ENV_OPENAI_BACKENDS = "AZURE_OPENAI_BACKENDS"
ENV_JOB_DEADLINE_SECONDS = "JOB_DEADLINE_SECONDS"
ENV_UPSTREAM_PACING = "UPSTREAM_PACING"

# What infra/ must set in Azure: every setting the app reads there (keyless: no API key, no
# connection string; the local-development flag stays off).
DEPLOYED_SETTING_NAMES: frozenset[str] = frozenset(
    {
        ENV_OPENAI_ENDPOINT,
        ENV_OPENAI_API_STYLE,
        ENV_OPENAI_DEPLOYMENT,
        ENV_OPENAI_MODEL,
        ENV_OPENAI_API_VERSION,
        ENV_OPENAI_SCOPE,
        ENV_CLIENT_ID,
        ENV_STORAGE_BLOB_URI,
        ENV_STORAGE_QUEUE_URI,
        ENV_STORAGE_CREDENTIAL,
        ENV_STORAGE_CLIENT_ID,
        ENV_IMAGES_CONTAINER,
        ENV_JOBS_CONTAINER,
        ENV_SAS_TTL_MINUTES,
        ENV_MAX_WAIT_SECONDS,
        ENV_UPSTREAM_TIMEOUT_SECONDS,
        ENV_JOB_LEASE_SECONDS,
        ENV_WEBHOOK_SECRET,
        ENV_IMAGE_PRICES,
        ENV_PUBLIC_API_BASE,
        ENV_SDK_LOG_LEVEL,
        ENV_EASY_AUTH,
        ENV_CALLER_DAILY_IMAGES,
        ENV_IDEMPOTENCY_SECRET,
        ENV_OPENAI_BACKENDS,
        ENV_JOB_DEADLINE_SECONDS,
    }
)
# Read only on a developer's machine.
LOCAL_ONLY_SETTING_NAMES: frozenset[str] = frozenset(
    {ENV_OPENAI_API_KEY, ENV_STORAGE, ENV_ALLOW_LOCAL_WEBHOOKS, ENV_UPSTREAM_PACING}
)
# Set by infra/ for the platform (Application Insights), not read by imagegen.
PLATFORM_SETTING_NAMES: frozenset[str] = frozenset(
    {
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",  # the host refuses larger request bodies before the app
    }
)

# The Functions host's route prefix (host.json extensions.http.routePrefix).
ROUTE_PREFIX = "/api"
QUEUE_IMAGE_JOBS = "image-jobs"
QUEUE_IMAGE_REQUESTS = "image-requests"
QUEUE_IMAGE_RESULTS = "image-results"
DEFAULT_IMAGES_CONTAINER = "images"
DEFAULT_JOBS_CONTAINER = "jobs"

DEFAULT_MODEL = "gpt-image-2"
DEFAULT_JOB_DEADLINE_SECONDS = 3600.0
MAX_SAS_TTL_MINUTES = 7 * 24 * 60
# The Azure front end cuts HTTP requests at 230 s; leave room for storage work and the answer.
MAX_WAIT_SECONDS_LIMIT = 200.0
# `UseDevelopmentStorage=true` means Azurite on its default ports with its public, documented key.
AZURITE_DEFAULT_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


@dataclass(frozen=True)
class StorageSettings:
    """`AzureWebJobsStorage`: identity-based (`__blobServiceUri` …) or a connection string (local only)."""

    blob_service_uri: str
    queue_service_uri: str
    connection_string: str | None = field(default=None, repr=False)
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class Settings:
    openai_endpoint: str
    api_style: ApiStyle
    deployment: str
    model: str
    api_version: str
    openai_scope: str
    storage: StorageSettings
    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = None
    images_container: str = DEFAULT_IMAGES_CONTAINER
    jobs_container: str = DEFAULT_JOBS_CONTAINER
    sas_ttl_minutes: int = 60
    max_wait_seconds: float = 120.0
    upstream_timeout_seconds: float = 180.0
    job_lease_seconds: float = 30.0
    webhook_secret: str | None = field(default=None, repr=False)
    allow_local_webhooks: bool = False
    prices: PriceTable = field(default_factory=shipped_prices, repr=False)
    public_api_base: str | None = None  # e.g. https://<app>.azurewebsites.net/api
    sdk_log_level: str | None = None  # the `azure` loggers' level (WARNING in Azure); None: left alone
    # App Service Authentication in front: callers are Entra principals, each with their own jobs.
    easy_auth: bool = False
    caller_daily_images: int | None = None  # with Easy Auth: images a caller may ask for per UTC day
    # Keys the hash that maps an Idempotency-Key to its job; None: a key the app keeps in Blob Storage.
    idempotency_secret: str | None = field(default=None, repr=False)
    # The pool (AZURE_OPENAI_BACKENDS, or the single deployment above); empty: that one alone.
    pool: tuple[Backend, ...] = ()
    job_deadline_seconds: float = DEFAULT_JOB_DEADLINE_SECONDS  # a job waits this long for a slot
    pacing: bool = True  # UPSTREAM_PACING=off: no budget spent ahead (the measurements' baseline)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        pool_text = reader.optional(ENV_OPENAI_BACKENDS)
        pool_items = _pool_items(pool_text) if pool_text is not None else []
        model = reader.optional(ENV_OPENAI_MODEL) or _first_model(pool_items) or DEFAULT_MODEL
        entry = _served_model(model)
        scope = reader.optional(ENV_OPENAI_SCOPE)
        pool = tuple(_pool_backend(item, index, entry, scope) for index, item in enumerate(pool_items))
        _check_pool(pool)
        dialect = _dialect(reader.optional(ENV_OPENAI_API_STYLE), entry)
        deployment = reader.optional(ENV_OPENAI_DEPLOYMENT) or (pool[0].deployment if pool else None)
        if deployment is None:
            raise SettingsError(ENV_OPENAI_DEPLOYMENT, "is required (the name of the model's deployment)")
        if pool and reader.optional(ENV_OPENAI_ENDPOINT) is None:
            endpoint = pool[0].endpoint
        else:
            endpoint = reader.url(ENV_OPENAI_ENDPOINT).rstrip("/")
        max_wait = reader.number(ENV_MAX_WAIT_SECONDS, default=120.0, low=0.0, high=MAX_WAIT_SECONDS_LIMIT)
        upstream_timeout = reader.number(ENV_UPSTREAM_TIMEOUT_SECONDS, default=180.0, low=1.0, high=3600.0)
        return cls(
            openai_endpoint=endpoint,
            api_style=dialect.style,
            deployment=deployment,
            model=entry.key,
            api_version=reader.optional(ENV_OPENAI_API_VERSION) or dialect.api_version,
            openai_scope=scope or entry.scope,
            storage=_storage_settings(reader),
            api_key=reader.optional(ENV_OPENAI_API_KEY),
            client_id=reader.optional(ENV_CLIENT_ID),
            images_container=reader.container(ENV_IMAGES_CONTAINER, DEFAULT_IMAGES_CONTAINER),
            jobs_container=reader.container(ENV_JOBS_CONTAINER, DEFAULT_JOBS_CONTAINER),
            sas_ttl_minutes=int(
                reader.number(ENV_SAS_TTL_MINUTES, default=60, low=1, high=MAX_SAS_TTL_MINUTES)
            ),
            max_wait_seconds=max_wait,
            upstream_timeout_seconds=upstream_timeout,
            job_lease_seconds=reader.number(ENV_JOB_LEASE_SECONDS, default=30.0, low=5.0, high=600.0),
            webhook_secret=_webhook_secret(reader.optional(ENV_WEBHOOK_SECRET)),
            allow_local_webhooks=reader.flag(ENV_ALLOW_LOCAL_WEBHOOKS),
            prices=_prices(reader.optional(ENV_IMAGE_PRICES)),
            public_api_base=_public_api_base(reader),
            sdk_log_level=_log_level(reader.optional(ENV_SDK_LOG_LEVEL)),
            idempotency_secret=_idempotency_secret(reader.optional(ENV_IDEMPOTENCY_SECRET)),
            easy_auth=reader.flag(ENV_EASY_AUTH),
            caller_daily_images=_daily_images(reader),
            pool=pool,
            job_deadline_seconds=reader.number(
                ENV_JOB_DEADLINE_SECONDS,
                default=DEFAULT_JOB_DEADLINE_SECONDS,
                low=5.0,
                high=MAX_JOB_DEADLINE_SECONDS,
            ),
            pacing=_pacing(reader.optional(ENV_UPSTREAM_PACING)),
        )

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Every deployment a job may go to: the pool, or the single deployment as a pool of one."""
        if self.pool:
            return self.pool
        return (
            Backend(
                endpoint=self.openai_endpoint,
                deployment=self.deployment,
                model=self.model,
                api_style=self.api_style,
                api_version=self.api_version,
                scope=self.openai_scope,
                rpm=self.catalog_model.lifecycle.default_rpm or FALLBACK_RPM,
            ),
        )

    @property
    def api_base(self) -> str:
        """Where the API is, for Location and the job's URLs: PUBLIC_API_BASE (the app's own host name
        in Azure), else the route prefix alone (a relative URL). Never a request's Host header."""
        return self.public_api_base or ROUTE_PREFIX

    @property
    def catalog_model(self) -> CatalogModel:
        entry = model_entry(self.model)
        assert entry is not None  # from_env checked it
        return entry

    @property
    def lifecycle(self) -> Lifecycle:
        return self.catalog_model.lifecycle


MAX_JOB_DEADLINE_SECONDS = 6 * 24 * 3600.0  # within a queue message's longest visibility delay (7 days)
FALLBACK_RPM = 6  # the smallest documented default quota of an image model
MAX_BACKENDS = 20
BACKEND_KEYS = frozenset(
    {"endpoint", "deployment", "model", "api_style", "api_version", "rpm", "priority", "label"}
)


def _pacing(text: str | None) -> bool:
    if text is None or text.lower() == "on":
        return True
    if text.lower() == "off":
        return False
    raise SettingsError(ENV_UPSTREAM_PACING, "must be on or off")


def _pool_items(text: str) -> list[dict[str, object]]:
    try:
        items = json.loads(text)
    except ValueError:
        raise SettingsError(ENV_OPENAI_BACKENDS, "must be a JSON array of backends") from None
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise SettingsError(ENV_OPENAI_BACKENDS, "must be a non-empty JSON array of objects")
    if len(items) > MAX_BACKENDS:
        raise SettingsError(ENV_OPENAI_BACKENDS, f"may list at most {MAX_BACKENDS} backends")
    return items


def _first_model(items: list[dict[str, object]]) -> str | None:
    model = items[0].get("model") if items else None
    return model if isinstance(model, str) and model else None


def _pool_backend(item: dict[str, object], index: int, entry: CatalogModel, scope: str | None) -> Backend:
    """One backend of AZURE_OPENAI_BACKENDS; every field checked, unknown ones refused (typos)."""

    def problem(text: str) -> SettingsError:
        return SettingsError(ENV_OPENAI_BACKENDS, f"backend {index}: {text}")

    unknown = set(item) - BACKEND_KEYS
    if unknown:
        raise problem(f"unknown field(s) {sorted(unknown)}; known: {sorted(BACKEND_KEYS)}")
    endpoint = item.get("endpoint")
    if not isinstance(endpoint, str):
        raise problem("endpoint is required (https://<account>.openai.azure.com)")
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.username:
        raise problem("endpoint must be an absolute https URL")
    deployment = item.get("deployment")
    if not isinstance(deployment, str) or not deployment.strip() or "/" in deployment:
        raise problem("deployment is required (the deployment's name)")
    model = item.get("model", entry.key)
    found = model_entry(model) if isinstance(model, str) else None
    if found is None or found.key != entry.key:
        raise problem(f"serves {model!r}, but the pool serves {entry.name}: a job never changes model")
    style_text = item.get("api_style")
    if style_text is not None and not isinstance(style_text, str):
        raise problem("api_style must be a string")
    try:
        dialect = _dialect(style_text or None, entry)
    except SettingsError as error:
        raise problem(f"api_style {error.problem}") from None
    api_version = item.get("api_version") or dialect.api_version
    if not isinstance(api_version, str):
        raise problem("api_version must be a string")
    rpm = item.get("rpm", entry.lifecycle.default_rpm or FALLBACK_RPM)
    if isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= 100_000:
        raise problem("rpm must be a whole number of requests per minute (1-100000)")
    priority = item.get("priority", 1)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 100:
        raise problem("priority must be a whole number from 1 (preferred) to 100")
    label = item.get("label")
    if label is not None and (
        not isinstance(label, str)
        or not label
        or len(label) > 64
        or not all(c.isalnum() or c in "-_." for c in label)
    ):
        raise problem("label must be up to 64 letters, digits, '-', '_' or '.' (e.g. the region)")
    return Backend(
        endpoint=endpoint.strip().rstrip("/"),
        deployment=deployment.strip(),
        model=entry.key,
        api_style=dialect.style,
        api_version=api_version,
        scope=scope or entry.scope,
        rpm=rpm,
        priority=priority,
        label=label,
    )


def _check_pool(pool: tuple[Backend, ...]) -> None:
    ids = [backend.id for backend in pool]
    repeated = sorted({name for name in ids if ids.count(name) > 1})
    if repeated:
        raise SettingsError(ENV_OPENAI_BACKENDS, f"lists the same backend twice: {', '.join(repeated)}")


# Standard Webhooks: the signing key is 24 to 64 bytes (`whsec_` + base64, or the text itself).
WEBHOOK_KEY_BYTES = (24, 64)


def webhook_signing_key(secret: str) -> bytes:
    """The HMAC key of a WEBHOOK_SECRET; ValueError when it is not a sound one."""
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ValueError("must be whsec_ followed by base64") from None
    else:
        key = secret.encode()
    low, high = WEBHOOK_KEY_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"must be a key of {low} to {high} bytes (whsec_ + base64, or plain text)")
    return key


def _webhook_secret(secret: str | None) -> str | None:
    if secret is not None:
        try:
            webhook_signing_key(secret)
        except ValueError as problem:
            raise SettingsError(ENV_WEBHOOK_SECRET, str(problem)) from None
    return secret


def _daily_images(reader: _Reader) -> int | None:
    if reader.optional(ENV_CALLER_DAILY_IMAGES) is None:
        return None
    return int(reader.number(ENV_CALLER_DAILY_IMAGES, default=0, low=1, high=1_000_000))


MIN_IDEMPOTENCY_SECRET_BYTES = 32


def _idempotency_secret(secret: str | None) -> str | None:
    if secret is not None and len(secret.encode()) < MIN_IDEMPOTENCY_SECRET_BYTES:
        raise SettingsError(ENV_IDEMPOTENCY_SECRET, f"must be at least {MIN_IDEMPOTENCY_SECRET_BYTES} bytes")
    return secret


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str | None) -> str | None:
    if text is None:
        return None
    if text.upper() not in LOG_LEVELS:
        raise SettingsError(ENV_SDK_LOG_LEVEL, f"must be one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def _public_api_base(reader: _Reader) -> str | None:
    if reader.optional(ENV_PUBLIC_API_BASE) is None:
        return None
    value = reader.url(ENV_PUBLIC_API_BASE).rstrip("/")
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(
            ENV_PUBLIC_API_BASE, "must be a plain URL such as https://<app>.azurewebsites.net/api"
        )
    return value


def _prices(override: str | None) -> PriceTable:
    if override is None:
        return shipped_prices()
    try:
        return shipped_prices().overridden(override)
    except PriceTableError as error:
        raise SettingsError(ENV_IMAGE_PRICES, str(error)) from None


def _dialect(style_text: str | None, entry: CatalogModel) -> Dialect:
    """The dialect asked for, if the model is served on it; else the model's documented one."""
    if style_text is None:
        return entry.default_dialect
    served = ", ".join(d.style.value for d in entry.dialects)
    try:
        found = entry.dialect(ApiStyle(style_text.lower()))
    except ValueError:
        found = None
    if found is None:
        raise SettingsError(ENV_OPENAI_API_STYLE, f"must be one of {served} for {entry.name}")
    return found


def _served_model(model: str) -> CatalogModel:
    """The catalog entry of a model Azure serves today; a retired or unknown one stops start-up."""
    entry = model_entry(model)
    if entry is None:
        raise SettingsError(ENV_OPENAI_MODEL, f"names an unknown image model {model!r}")
    if entry.lifecycle.is_retired(_today()) or entry.rules is None:
        raise SettingsError(ENV_OPENAI_MODEL, retirement_message(entry.lifecycle))
    if entry.lifecycle.retires_soon(_today()):
        _warn_retirement_once(entry.lifecycle)
    return entry


def _today() -> date:
    return datetime.now(UTC).date()


_warned: set[str] = set()


def _warn_retirement_once(lifecycle: Lifecycle) -> None:
    if lifecycle.model in _warned:
        return
    _warned.add(lifecycle.model)
    log.warning(
        "%s retires on %s (%s days from now); plan the move to %s",
        lifecycle.model,
        lifecycle.retires,
        lifecycle.days_left(_today()),
        lifecycle.replacement or "its successor",
    )


KEY_VAULT_REFERENCE_PREFIX = "@microsoft.keyvault("


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        if value.lower().startswith(KEY_VAULT_REFERENCE_PREFIX):
            # App Service passes the reference text itself when it cannot resolve it.
            raise SettingsError(
                name,
                "is a Key Vault reference the platform could not resolve: check that the secret exists "
                "and that the app's identity (keyVaultReferenceIdentity) may read it",
            )
        return value or None

    def url(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "is required")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise SettingsError(name, "must be an absolute http(s) URL")
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        text = self.optional(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise SettingsError(name, f"must be a number, not {text!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low:g} and {high:g}, not {value:g}")
        return value

    def flag(self, name: str) -> bool:
        text = (self.optional(name) or "false").lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
        raise SettingsError(name, "must be true or false")

    def container(self, name: str, default: str) -> str:
        value = self.optional(name) or default
        valid = 3 <= len(value) <= 63 and all(c.islower() or c.isdigit() or c == "-" for c in value)
        if not valid or value.startswith("-") or "--" in value:
            raise SettingsError(name, "must be a valid container name (3-63 lowercase letters, digits, -)")
        return value


def _storage_settings(reader: _Reader) -> StorageSettings:
    blob_uri = reader.optional(ENV_STORAGE_BLOB_URI)
    if blob_uri is not None:
        queue_uri = reader.optional(ENV_STORAGE_QUEUE_URI)
        if queue_uri is None:
            raise SettingsError(ENV_STORAGE_QUEUE_URI, "is required with identity-based storage")
        credential = (reader.optional(ENV_STORAGE_CREDENTIAL) or "managedidentity").lower()
        if credential != "managedidentity":
            raise SettingsError(ENV_STORAGE_CREDENTIAL, "must be managedidentity")
        reader.url(ENV_STORAGE_BLOB_URI)
        reader.url(ENV_STORAGE_QUEUE_URI)
        return StorageSettings(
            blob_service_uri=blob_uri.rstrip("/"),
            queue_service_uri=queue_uri.rstrip("/"),
            client_id=reader.optional(ENV_STORAGE_CLIENT_ID),
        )
    connection_string = reader.optional(ENV_STORAGE)
    if connection_string is None:
        raise SettingsError(
            ENV_STORAGE,
            f"is required: set {ENV_STORAGE_BLOB_URI} (identity) or {ENV_STORAGE} (connection string)",
        )
    parts = parse_connection_string(connection_string)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        connection_string = AZURITE_DEFAULT_CONNECTION_STRING
        parts = parse_connection_string(connection_string)
    if "AccountName" not in parts or "AccountKey" not in parts:
        raise SettingsError(ENV_STORAGE, "connection string needs AccountName and AccountKey")
    if "BlobEndpoint" in parts and "QueueEndpoint" in parts:
        blob, queue = parts["BlobEndpoint"], parts["QueueEndpoint"]
    else:
        protocol = parts.get("DefaultEndpointsProtocol", "https")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        account = parts["AccountName"]
        blob = parts.get("BlobEndpoint", f"{protocol}://{account}.blob.{suffix}")
        queue = parts.get("QueueEndpoint", f"{protocol}://{account}.queue.{suffix}")
    return StorageSettings(
        blob_service_uri=blob.rstrip("/"),
        queue_service_uri=queue.rstrip("/"),
        connection_string=connection_string,
    )


def parse_connection_string(connection_string: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for segment in connection_string.split(";"):
        if "=" in segment:
            key, _, value = segment.partition("=")
            parts[key.strip()] = value.strip()
    return parts
