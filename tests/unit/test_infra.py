"""infra/ and azure.yaml: they parse, pass checkov, and agree with the code.

There is no bicep binary and no Azure here, so the templates are proven by parsing (pycep-parser),
policy checks (checkov) and consistency with imagegen.domain.settings. Both tools live in .venv-iac
(requirements-iac.txt) and run as subprocesses; this file runs in the app's .venv.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from imagegen.domain.catalog import CATALOG, ApiStyle, model_entry
from imagegen.domain.settings import (
    BACKEND_KEYS,
    DEFAULT_IMAGES_CONTAINER,
    DEFAULT_JOBS_CONTAINER,
    DEFAULT_MODEL,
    DEPLOYED_SETTING_NAMES,
    ENV_JOB_DEADLINE_SECONDS,
    ENV_OPENAI_API_KEY,
    ENV_OPENAI_BACKENDS,
    ENV_WEBHOOK_SECRET,
    LOCAL_ONLY_SETTING_NAMES,
    MAX_BACKENDS,
    MAX_JOB_DEADLINE_SECONDS,
    PLATFORM_SETTING_NAMES,
    QUEUE_IMAGE_JOBS,
    QUEUE_IMAGE_REQUESTS,
    QUEUE_IMAGE_RESULTS,
    Settings,
)
from tests.unit.infra_helpers import CHECKOV, IAC_PYTHON, ROOT

INFRA = ROOT / "infra"

# Built-in role definition ids, as Azure's built-in roles page lists them
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
DOCUMENTED_ROLES = {
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Cognitive Services User": "a97b65f3-24c7-4388-baec-2e87135dc908",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Message Processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",
}
# roles.json key -> documented role name.
ROLE_KEYS = {
    "cognitiveServicesOpenAIUser": "Cognitive Services OpenAI User",
    "cognitiveServicesUser": "Cognitive Services User",
    "storageBlobDataOwner": "Storage Blob Data Owner",
    "storageQueueDataContributor": "Storage Queue Data Contributor",
    "monitoringMetricsPublisher": "Monitoring Metrics Publisher",
    "keyVaultSecretsUser": "Key Vault Secrets User",
    "storageQueueDataMessageSender": "Storage Queue Data Message Sender",
    "storageQueueDataMessageProcessor": "Storage Queue Data Message Processor",
}

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
AZD_VAR = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>[^}]*))?\}$")
# Words that must not appear in an output's name (an output lands in .azure/<env>/.env in clear).
SECRET_WORDS = {
    "secret",
    "secrets",
    "key",
    "keys",
    "password",
    "pwd",
    "token",
    "sas",
    "connection",
    "credential",
}


def _iac_missing_message() -> str:
    return (
        f"{IAC_PYTHON} is missing: python3 -m venv .venv-iac && "
        ".venv-iac/bin/pip install -r requirements-iac.txt (make test does this)"
    )


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    """pycep JSON of every .bicep file (relative to infra/) and azure.yaml, from one subprocess."""
    if not IAC_PYTHON.exists():
        pytest.fail(_iac_missing_message())
    helper = Path(__file__).resolve().parent / "infra_helpers.py"
    done = subprocess.run(
        [str(IAC_PYTHON), str(helper), str(ROOT)], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def bicep(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for name, outcome in parsed["bicep"].items():
        if "ok" in outcome:
            files[name] = outcome["ok"]
    return files


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over infra/ for the whole module (it takes a few seconds)."""
    if not CHECKOV.exists():
        pytest.fail(_iac_missing_message())
    env = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",  # no look-up of newer checkov releases
        "CKV_PARSE_ERROR_FAIL": "true",
        "CKV_CACHE_DIR": str(tmp_path_factory.mktemp("checkov-cache")),
    }
    done = subprocess.run(
        [str(CHECKOV), "--framework", "bicep", "--skip-download", "-d", str(INFRA), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env=env,
        cwd=ROOT,
    )
    assert done.stdout.strip(), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    report["returncode"] = done.returncode
    return report


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicep_texts(*, code_only: bool = False) -> Iterator[tuple[str, str]]:
    """(path relative to infra/, text); code_only drops // comments (which may name what is banned)."""
    for path in bicep_files():
        text = path.read_text()
        if code_only:
            text = re.sub(r"(?m)(^|\s)//.*$", r"\1", text)
        yield path.relative_to(INFRA).as_posix(), text


def default_of(parameter: dict[str, Any]) -> Any:
    return parameter.get("default")


def settings_of_var(variables: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(always-set, conditionally-set) name -> value of a name/value array var or a `cond ? [...] : [...]` var."""
    value = variables[name]["value"]
    branches: list[Any]
    if isinstance(value, dict) and "operator" in value:
        operator = value["operator"]
        assert operator["type"] == "conditional", f"{name}: unexpected expression {operator['type']}"
        branches = [operator["operands"]["true_value"], operator["operands"]["false_value"]]
        conditional = True
    else:
        branches = [value]
        conditional = False
    found: dict[str, Any] = {}
    for branch in branches:
        assert isinstance(branch, list), f"{name} must be an array literal of name/value pairs"
        for pair in branch:
            assert set(pair) == {"name", "value"}, f"{name}: {pair}"
            assert pair["name"] not in found, f"{name}: {pair['name']} twice"
            found[pair["name"]] = pair["value"]
    return ({}, found) if conditional else (found, {})


def app_settings(api: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every app setting infra/app/api.bicep sets, name -> value: (always, conditional)."""
    variables = api["variables"]
    site = api["resources"]["functionApp"]["config"]
    assert site["properties"]["siteConfig"]["appSettings"] == "allSettings"
    concat = variables["allSettings"]["value"]["function"]
    assert concat["type"] == "concat"
    always: dict[str, Any] = {}
    conditional: dict[str, Any] = {}
    for var_name in concat["parameters"].values():
        fixed, optional = settings_of_var(variables, var_name)
        assert not (set(fixed) | set(optional)) & (set(always) | set(conditional)), "a setting is set twice"
        always |= fixed
        conditional |= optional
    return always, conditional


# ---------------------------------------------------------------- parsing and policy


def test_every_bicep_file_parses(parsed: dict[str, Any]) -> None:
    expected = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert expected >= {"main.bicep", "app/api.bicep", "app/rbac.bicep"}
    assert set(parsed["bicep"]) == expected
    errors = {name: o["error"] for name, o in parsed["bicep"].items() if "error" in o}
    assert not errors


def test_checkov_passes(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0, checkov_report["results"]["parsing_errors"]
    assert summary["passed"] > 0
    assert checkov_report["returncode"] == 0


def test_every_checkov_skip_is_justified_inline(checkov_report: dict[str, Any]) -> None:
    for skipped in checkov_report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "").strip()
        assert len(reason) >= 20, f"{skipped['check_id']} on {skipped['resource']} needs a real reason"
    skip = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(.*)")
    for name, text in bicep_texts():
        for line in text.splitlines():
            match = skip.search(line)
            if match:
                assert line.lstrip().startswith("//"), f"{name}: {line.strip()}"
                assert re.match(r":\s*\S.{15,}", match.group(2)), f"{name}: unjustified skip {match.group(1)}"


# ---------------------------------------------------------------- the app settings equal what the code reads


def test_app_settings_are_exactly_what_the_code_reads(bicep: dict[str, dict[str, Any]]) -> None:
    always, conditional = app_settings(bicep["app/api.bicep"])
    assert set(always) | set(conditional) == DEPLOYED_SETTING_NAMES | PLATFORM_SETTING_NAMES
    assert set(conditional) == {ENV_WEBHOOK_SECRET, "IDEMPOTENCY_SECRET"}


def test_no_api_key_or_local_only_setting_anywhere() -> None:
    for name, text in bicep_texts(code_only=True):
        for setting in LOCAL_ONLY_SETTING_NAMES | {ENV_OPENAI_API_KEY}:
            # "AzureWebJobsStorage__x" is the identity form; only the bare connection-string name is banned.
            assert not re.search(rf"\b{re.escape(setting)}\b(?!__)", text), f"{setting} in {name}"


def test_webhook_secret_is_a_key_vault_reference_only_when_enabled(bicep: dict[str, dict[str, Any]]) -> None:
    api = bicep["app/api.bicep"]
    operator = api["variables"]["webhookSettings"]["value"]["operator"]
    assert operator["operands"]["condition"] == "webhooksEnabled"
    assert operator["operands"]["false_value"] == []
    _, conditional = app_settings(api)
    assert conditional[ENV_WEBHOOK_SECRET].startswith("@Microsoft.KeyVault(SecretUri=${")
    site = api["resources"]["functionApp"]["config"]["properties"]
    assert site["keyVaultReferenceIdentity"] == "identityId"

    main = bicep["main.bicep"]
    assert main["modules"]["keyVault"]["config"]["condition"] == "vaultOn"
    assert "webhookSecret" in main["parameters"]
    decorators = [d["type"] for d in main["parameters"]["webhookSecret"]["decorators"]]
    assert "secure" in decorators
    vault = bicep["core/security/keyvault.bicep"]["resources"]["vault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    secret_param = bicep["core/security/keyvault.bicep"]["parameters"]["secretValue"]
    assert "secure" in [d["type"] for d in secret_param["decorators"]]


def test_identity_based_host_storage_and_entra_telemetry(bicep: dict[str, dict[str, Any]]) -> None:
    always, _ = app_settings(bicep["app/api.bicep"])
    assert always["AzureWebJobsStorage__credential"] == "managedidentity"
    assert always["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert always["AzureWebJobsStorage__blobServiceUri"] == "storageBlobEndpoint"
    assert always["AzureWebJobsStorage__queueServiceUri"] == "storageQueueEndpoint"
    assert (
        always["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )
    assert always["AZURE_CLIENT_ID"] == "identityClientId"


# ---------------------------------------------------------------- names and defaults shared with the code


def test_queue_and_container_names_match_the_code(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    variables = main["variables"]
    work = {QUEUE_IMAGE_JOBS, QUEUE_IMAGE_REQUESTS, QUEUE_IMAGE_RESULTS}
    assert set(variables["workQueues"]["value"]) == work
    assert set(variables["poisonQueues"]["value"]) == {f"{q}-poison" for q in work}
    assert variables["imagesContainerName"]["value"] == DEFAULT_IMAGES_CONTAINER
    assert variables["jobsContainerName"]["value"] == DEFAULT_JOBS_CONTAINER

    storage = main["modules"]["storage"]["config"]["params"]
    assert storage["containers"] == ["imagesContainerName", "jobsContainerName", "deploymentContainerName"]
    assert storage["queues"]["function"]["parameters"] == {"arg_1": "workQueues", "arg_2": "poisonQueues"}
    # The lifecycle rule deletes everything under images/ and jobs/ after retentionDays.
    assert storage["expiringPrefixes"] == ["${imagesContainerName}/", "${jobsContainerName}/"]
    assert storage["retentionDays"] == "retentionDays"

    api = main["modules"]["api"]["config"]["params"]
    assert api["imagesContainerName"] == "imagesContainerName"
    assert api["jobsContainerName"] == "jobsContainerName"


def test_defaults_match_the_code(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    params = main["parameters"]
    code_defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert default_of(params["sasTtlMinutes"]) == code_defaults["sas_ttl_minutes"]
    assert default_of(params["maxWaitSeconds"]) == code_defaults["max_wait_seconds"]
    assert default_of(params["upstreamTimeoutSeconds"]) == code_defaults["upstream_timeout_seconds"]
    assert default_of(params["jobLeaseSeconds"]) == code_defaults["job_lease_seconds"]
    assert default_of(params["openAiModelName"]) == DEFAULT_MODEL
    # Dialect, api-version and scope default to empty: the app then takes the model's from its catalog.
    assert default_of(params["openAiScope"]) == ""
    assert default_of(params["openAiApiVersion"]) == ""
    assert default_of(params["openAiApiStyle"]) == ""
    assert default_of(params["imagePrices"]) == ""
    styles = next(d for d in params["openAiApiStyle"]["decorators"] if d["type"] == "allowed")["argument"]
    assert set(styles) == {"", *(style.value for style in ApiStyle)}


def test_the_default_deployment_is_gpt_image_2_at_its_documented_version_and_sku(
    bicep: dict[str, dict[str, Any]],
) -> None:
    params = bicep["main.bicep"]["parameters"]
    entry = model_entry(DEFAULT_MODEL)
    assert entry is not None
    lifecycle = entry.lifecycle
    assert default_of(params["openAiModelName"]) == "gpt-image-2" == lifecycle.model
    assert default_of(params["openAiModelVersion"]) == "2026-04-21" == lifecycle.version
    assert default_of(params["openAiDeploymentSkuName"]) == "GlobalStandard"
    assert entry.default_dialect.style is ApiStyle.V1  # what the app uses when infra leaves it empty
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["openAiModelName"]["value"] == "${AZURE_OPENAI_MODEL=gpt-image-2}"
    assert azd["openAiModelVersion"]["value"] == "${AZURE_OPENAI_MODEL_VERSION=2026-04-21}"


def test_infra_tells_flux_from_openai_models_the_way_the_catalog_names_them() -> None:
    """main.bicep deploys a model whose name starts with "flux" as a Foundry model (AIServices account,
    format Black Forest Labs, Cognitive Services User); every other served model as Azure OpenAI."""
    text = (INFRA / "main.bicep").read_text()
    assert "startsWith(toLower(openAiModelName), 'flux')" in text
    assert "'Black Forest Labs'" in text and "'AIServices'" in text
    for entry in CATALOG.values():
        if entry.rules is not None:
            assert entry.key.startswith("flux") == (entry.family.value == "flux"), entry.name


def test_no_retired_model_appears_anywhere_in_infra() -> None:
    retired = [entry.lifecycle for entry in CATALOG.values() if entry.lifecycle.is_retired(date(2026, 12, 2))]
    assert {item.model for item in retired} >= {"gpt-image-1", "dall-e-3", "dall-e-2"}
    for path in [*INFRA.rglob("*.bicep"), *INFRA.rglob("*.json"), ROOT / "azure.yaml"]:
        text = path.read_text().lower()
        for item in retired:
            # gpt-image-1 is a prefix of live names (gpt-image-1.5, gpt-image-1-mini): match it whole.
            found = re.search(re.escape(item.model) + r"(?![.\w-])", text)
            assert found is None, f"{path.relative_to(ROOT)} names the retired model {item.model}"


# ---------------------------------------------------------------- identity, RBAC and keyless resources


def test_role_ids_are_the_documented_built_in_roles() -> None:
    roles = json.loads((INFRA / "app" / "roles.json").read_text())
    assert set(roles) == set(ROLE_KEYS)
    for key, role_id in roles.items():
        assert role_id == DOCUMENTED_ROLES[ROLE_KEYS[key]], key


def test_role_ids_live_only_in_roles_json() -> None:
    for name, text in bicep_texts():
        assert not GUID.search(text), f"{name} has a GUID literal; built-in role ids belong in app/roles.json"
    used = "\n".join(text for _, text in bicep_texts())
    for key in json.loads((INFRA / "app" / "roles.json").read_text()):
        assert f"roles.{key}" in used, f"roles.json entry {key} is never assigned"


def test_role_assignments_are_named_with_guid_and_use_roles_json(bicep: dict[str, dict[str, Any]]) -> None:
    assignments = 0
    for name, module in bicep.items():
        for resource_name, resource in module.get("resources", {}).items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            assignments += 1
            config = resource["config"]
            config = config.get("config", config)  # conditional resources nest their body
            assert config["name"]["function"]["type"] == "guid", f"{name}:{resource_name}"
            role = config["properties"]["roleDefinitionId"]["function"]
            assert role["type"] == "subscription_resource_id", f"{name}:{resource_name}"
            accessor = role["parameters"]["resource_name_1"]["operator"]["operands"]
            assert accessor["operand_1"] == "roles", f"{name}:{resource_name}"
            assert accessor["operand_2"] in ROLE_KEYS
    # identity: blob, queue, metrics, key vault, openai; deploying user: blob, queue, metrics, openai
    assert assignments == 13  # two only with a FLUX model, two per listed pipeline identity


def test_keyless_resources(bicep: dict[str, dict[str, Any]]) -> None:
    account = bicep["core/storage/storage-account.bicep"]["resources"]["account"]["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True

    openai = bicep["core/ai/openai.bicep"]["resources"]["account"]
    assert openai["config"]["kind"] == "kind"  # OpenAI, or AIServices for FLUX (main.bicep)
    assert default_of(bicep["core/ai/openai.bicep"]["parameters"]["kind"]) == "OpenAI"
    assert openai["config"]["properties"]["disableLocalAuth"] is True
    assert openai["config"]["properties"]["customSubDomainName"] == "customSubDomainName"

    insights = bicep["core/monitor/monitoring.bicep"]["resources"]["applicationInsights"]["config"]
    assert insights["properties"]["DisableLocalAuth"] is True


def test_flex_consumption_function_app(bicep: dict[str, dict[str, Any]]) -> None:
    plan = bicep["core/host/flex-consumption-plan.bicep"]["resources"]["plan"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}

    api = bicep["app/api.bicep"]
    site = api["resources"]["functionApp"]["config"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    scale = config["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}

    main = bicep["main.bicep"]
    assert main["modules"]["api"]["config"]["params"]["pythonVersion"] == "3.11"
    for name in ("instanceMemoryMB", "maximumInstanceCount", "httpPerInstanceConcurrency"):
        assert name in main["parameters"]
    assert default_of(main["parameters"]["httpPerInstanceConcurrency"]) >= 8  # async handlers


# ---------------------------------------------------------------- azd wiring


def test_main_is_subscription_scoped_and_creates_the_resource_group(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert main["resources"]["rg"]["type"] == "Microsoft.Resources/resourceGroups"


def test_parameters_file_matches_main(bicep: dict[str, dict[str, Any]]) -> None:
    params = bicep["main.bicep"]["parameters"]
    document = json.loads((INFRA / "main.parameters.json").read_text())
    values = {name: entry["value"] for name, entry in document["parameters"].items()}
    assert set(values) <= set(params), f"unknown parameters: {set(values) - set(params)}"
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= set(values), f"parameters azd cannot fill: {required - set(values)}"
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principalId"] == "${AZURE_PRINCIPAL_ID}"
    for name, value in values.items():
        match = AZD_VAR.match(value)
        assert match, f"{name}: {value!r} is not an azd ${{VAR}} or ${{VAR=default}}"
        if match.group("default") is None:
            continue
        # A default in the parameters file must agree with the one in main.bicep.
        declared = default_of(params[name])
        text = match.group("default")
        if params[name]["type"] == "int":
            assert int(text) == declared, name
        elif params[name]["type"] == "bool":
            assert text == str(declared).lower(), name
        elif params[name]["type"] == "array":
            assert json.loads(text) == declared, name
        else:
            assert text == declared, name


def _output_words(name: str) -> set[str]:
    name = re.sub(r"(?i)key_?vault", "vault", name)  # a vault's name is not a key
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return {word.lower() for word in re.split(r"[_\W]+", spaced) if word}


def test_no_list_keys_and_no_secret_outputs(bicep: dict[str, dict[str, Any]]) -> None:
    for name, text in bicep_texts(code_only=True):
        assert not re.search(r"\blist[A-Za-z]*\s*\(", text), f"{name} calls a list*() function"
        assert "listkeys" not in text.lower()
    for name, module in bicep.items():
        for output_name, output in module.get("outputs", {}).items():
            words = _output_words(output_name)
            assert not words & SECRET_WORDS, f"{name}: output {output_name} suggests a secret"
            decorators = [d["type"] for d in output.get("decorators", [])]
            assert "secure" not in decorators
    outputs = bicep["main.bicep"]["outputs"]
    for expected in ("AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "AZURE_FUNCTION_APP_URL"):
        assert expected in outputs


def test_azure_yaml(parsed: dict[str, Any]) -> None:
    document = parsed["azure_yaml"]
    assert list(document["services"]) == ["api"]
    service = document["services"]["api"]
    assert service["language"] == "python"
    assert service["host"] == "function"
    assert service["project"] == "."
    for platform in document["hooks"]["preprovision"].values():
        assert (ROOT / platform["run"]).is_file(), platform["run"]


# ---------------------------------------------------------------- the preprovision hook


@pytest.fixture
def fake_azd(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in `azd` on PATH that records its arguments."""
    record = tmp_path / "azd-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    azd = bin_dir / "azd"
    azd.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\n')
    azd.chmod(0o755)
    return bin_dir, record


def _run_hook(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["sh", str(INFRA / "hooks" / "preprovision.sh")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the hook needs openssl")
def test_preprovision_hook_generates_a_secret_once(fake_azd: tuple[Path, Path]) -> None:
    bin_dir, record = fake_azd
    done = _run_hook(bin_dir)
    assert done.returncode == 0, done.stderr
    idempotency_call, webhook_call = record.read_text().splitlines()
    command, _, key = idempotency_call.partition(" IDEMPOTENCY_SECRET ")
    assert command == "env set" and re.fullmatch(r"[A-Za-z0-9+/]{43}=", key)
    command, _, value = webhook_call.partition(" WEBHOOK_SECRET ")
    assert command == "env set"
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", value)
    assert value not in done.stdout + done.stderr and key not in done.stdout + done.stderr  # never printed

    record.unlink()
    kept = {"IDEMPOTENCY_SECRET": "an-existing-key"}
    assert _run_hook(bin_dir, WEBHOOK_SECRET="whsec_existing", **kept).returncode == 0
    assert _run_hook(bin_dir, WEBHOOKS_ENABLED="False", **kept).returncode == 0
    assert not record.exists()


def test_every_module_call_passes_parameters_its_module_declares_and_all_it_requires(
    bicep: dict[str, dict[str, Any]],
) -> None:
    """No bicep binary here: a parameter passed to a module that does not declare it (or a required one
    left out) would only fail at deployment, so compare each call with the module's parameters."""
    for caller, module_file in bicep.items():
        for module_name, module in module_file.get("modules", {}).items():
            target = str(Path(caller).parent / module["detail"]["path"]).removeprefix("./")
            declared = bicep[target]["parameters"]
            config = module["config"]
            passed = set(config.get("config", config).get("params") or {})
            assert passed <= set(declared), f"{caller}:{module_name} passes {sorted(passed - set(declared))}"
            required = {name for name, spec in declared.items() if spec.get("default") is None}
            assert required <= passed, f"{caller}:{module_name} leaves out {sorted(required - passed)}"


def test_pipeline_identities_get_queue_scoped_roles_on_their_queue_only(
    bicep: dict[str, dict[str, Any]],
) -> None:
    """A producer may send to image-requests, a consumer read image-results: never the account, whose
    image-jobs queue would let them run or replay jobs."""
    module = bicep["app/pipeline-rbac.bicep"]
    resources = module["resources"]
    scopes = {name: resources[name]["config"]["config"]["scope"] for name in ("producers", "consumers")}
    assert scopes == {"producers": "requestsQueue", "consumers": "resultsQueue"}
    roles = {
        name: resources[name]["config"]["config"]["properties"]["roleDefinitionId"]["function"]["parameters"]
        for name in ("producers", "consumers")
    }
    text = (INFRA / "app" / "pipeline-rbac.bicep").read_text()
    assert "roles.storageQueueDataMessageSender" in text and "roles.storageQueueDataMessageProcessor" in text
    assert "storageQueueDataContributor" not in text
    assert roles
    params = bicep["main.bicep"]["modules"]["pipelineRbac"]["config"]
    passed = params.get("config", params)["params"]
    assert (passed["requestsQueueName"], passed["resultsQueueName"]) == (
        QUEUE_IMAGE_REQUESTS,
        QUEUE_IMAGE_RESULTS,
    )


def test_easy_auth_is_a_parameter_that_puts_entra_in_front_and_keeps_health_anonymous(
    bicep: dict[str, dict[str, Any]],
) -> None:
    api = bicep["app/api.bicep"]
    auth = api["resources"]["authSettings"]["config"]
    body = auth.get("config", auth)
    assert body["name"] == "authsettingsV2"
    validation = body["properties"]["globalValidation"]
    assert (validation["requireAuthentication"], validation["unauthenticatedClientAction"]) == (
        True,
        "Return401",
    )
    assert {"/api/health", "/api/openapi.json", "/api/playground"} <= set(validation["excludedPaths"])
    assert body["properties"]["identityProviders"]["azureActiveDirectory"]["enabled"] is True
    main = bicep["main.bicep"]["parameters"]
    assert default_of(main["easyAuthEnabled"]) is False  # function keys unless asked


def test_the_idempotency_key_is_a_key_vault_reference_when_infra_keeps_one(
    bicep: dict[str, dict[str, Any]],
) -> None:
    _, conditional = app_settings(bicep["app/api.bicep"])
    assert conditional["IDEMPOTENCY_SECRET"].startswith("@Microsoft.KeyVault(SecretUri=${")
    main = bicep["main.bicep"]
    assert "secure" in [d["type"] for d in main["parameters"]["idempotencySecret"]["decorators"]]
    vault_params = bicep["core/security/keyvault.bicep"]["parameters"]
    assert "secure" in [d["type"] for d in vault_params["idempotencySecretValue"]["decorators"]]


# ---------------------------------------------------------------- the pool of image backends


def _decorator(parameter: dict[str, Any], kind: str) -> Any:
    return next(d["argument"] for d in parameter["decorators"] if d["type"] == kind)


def _reference(node: Any, scope: dict[str, Any]) -> str:
    """`openAiPool[i].outputs.endpoint` as text, the index evaluated: `openAiPool[1].outputs.endpoint`."""
    if isinstance(node, str):
        return node
    operator = node["operator"]
    operands = operator["operands"]
    if operator["type"] == "property_accessor":
        return f"{_reference(operands['operand_1'], scope)}.{_reference(operands['operand_2'], scope)}"
    assert operator["type"] == "index_accessor", operator["type"]
    return f"{_reference(operands['operand_1'], scope)}[{_evaluate(operands['operand_2'], scope)}]"


def _interpolate(text: str, scope: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        name, _, offset = match.group(1).partition("+")
        return str(scope[name.strip()] + int(offset) if offset else scope[name.strip()])

    return re.sub(r"\$\{([^}]*)\}", one, text)


def _evaluate(node: Any, scope: dict[str, Any]) -> Any:
    """What ARM makes of a pycep expression, for the few forms the pool's templates use. pycep writes
    identifiers and string literals alike, so a string is a name when the scope holds it."""
    if isinstance(node, str):
        if node in scope:
            return scope[node]
        return _interpolate(node, scope) if "${" in node else node
    if isinstance(node, list):
        return [_evaluate(item, scope) for item in node]
    if not isinstance(node, dict):
        return node
    if "loop_type" in node:
        loop = node["loop_type"]["detail"]
        items = []
        for index, item in enumerate(scope[loop["array_name"]]):
            names = {loop["item_name"]: item} | ({loop["index_name"]: index} if "index_name" in loop else {})
            items.append(_evaluate(node["config"], scope | names))
        return items
    if "function" in node:
        function = node["function"]
        args = {name: _evaluate(value, scope) for name, value in function["parameters"].items()}
        if function["type"] == "to_lower":
            return str(args["string_to_change"]).lower()
        if function["type"] == "replace":
            return str(args["original_string"]).replace(args["old_string"], args["new_string"])
        if function["type"] == "concat":
            return [item for arg in args.values() for item in arg]
        if function["type"] == "string":  # ARM's string(): JSON for arrays and objects
            value = args["value_to_convert"]
            return value if isinstance(value, str) else json.dumps(value)
        raise AssertionError(f"no evaluator for {function['type']}")
    if "operator" in node:
        operator = node["operator"]
        operands = operator["operands"]
        if operator["type"] == "conditional":
            branch = "true_value" if _evaluate(operands["condition"], scope) else "false_value"
            return _evaluate(operands[branch], scope)
        if operator["type"] == "equals":
            return _evaluate(operands["operand_1"], scope) == _evaluate(operands["operand_2"], scope)
        return scope[_reference(node, scope)]
    return {key: _evaluate(value, scope) for key, value in node.items()}


def test_the_pool_deploys_an_account_a_deployment_and_the_roles_per_extra_region(
    bicep: dict[str, dict[str, Any]],
) -> None:
    main = bicep["main.bicep"]
    regions = main["variables"]["openAiBackendRegions"]["value"]
    assert regions["loop_type"]["detail"]["array_name"] == "openAiBackendLocations"
    assert regions["config"]["function"]["type"] == "to_lower"  # "Sweden Central" -> swedencentral
    modules = main["modules"]

    # One account + deployment per region, made like the primary's (same model, SKU, capacity, kind).
    pool = modules["openAiPool"]
    assert pool["detail"]["path"] == modules["openAi"]["detail"]["path"] == "core/ai/openai.bicep"
    assert pool["config"]["loop_type"]["detail"]["array_name"] == "openAiBackendRegions"
    assert pool["config"]["condition"] is None
    body = pool["config"]["config"]
    assert body["name"] == "openai-${region}" and body["scope"] == "rg"
    primary = modules["openAi"]["config"]["config"]["params"]
    assert {k: v for k, v in body["params"].items() if k not in {"name", "location"}} == {
        k: v for k, v in primary.items() if k not in {"name", "location"}
    }
    assert body["params"]["location"] == "region"
    assert body["params"]["name"] == "${abbrs.cognitiveServicesOpenAI}${resourceToken}-${region}"
    account_module = bicep["core/ai/openai.bicep"]["resources"]
    assert {r["type"] for r in account_module.values()} == {
        "Microsoft.CognitiveServices/accounts",
        "Microsoft.CognitiveServices/accounts/deployments",
    }
    assert account_module["account"]["config"]["properties"]["disableLocalAuth"] is True

    # The same roles on each account as on the primary: the identity's and the deploying user's.
    rbac = modules["openAiPoolRbac"]
    assert rbac["detail"]["path"] == modules["openAiRbac"]["detail"]["path"] == "app/openai-rbac.bicep"
    loop = rbac["config"]["loop_type"]
    assert loop["type"] == "array_index" and loop["detail"]["array_name"] == "openAiBackendRegions"
    rbac_body = rbac["config"]["config"]
    assert rbac_body["name"] == "openai-rbac-${region}" and rbac_body["scope"] == "rg"
    index = loop["detail"]["index_name"]
    assert _reference(rbac_body["params"]["openAiAccountName"], {index: 1}) == "openAiPool[1].outputs.name"
    primary_rbac = modules["openAiRbac"]["config"]["params"]
    assert {k: v for k, v in rbac_body["params"].items() if k != "openAiAccountName"} == {
        k: v for k, v in primary_rbac.items() if k != "openAiAccountName"
    }
    assert primary_rbac["userPrincipalId"] == "deployerPrincipalId"
    # The host starts once every role exists.
    assert {"openAiRbac", "openAiPoolRbac"} <= set(modules["api"]["config"]["dependsOn"])


def test_the_backends_setting_is_the_primary_then_every_extra_deployment_with_the_keys_the_app_reads(
    bicep: dict[str, dict[str, Any]],
) -> None:
    api = bicep["app/api.bicep"]
    always, _ = app_settings(api)
    assert always[ENV_OPENAI_BACKENDS] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "openAiBackends"}}
    }
    assert always[ENV_JOB_DEADLINE_SECONDS] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "jobDeadlineSeconds"}}
    }
    variables = api["variables"]
    assert variables["openAiBackends"]["value"]["function"] == {
        "type": "concat",
        "parameters": {"arg_1": ["openAiPrimaryBackend"], "arg_2": "openAiPoolBackends"},
    }
    # The primary backend is what the single-deployment settings describe, from the same parameters.
    first = variables["openAiPrimaryBackend"]["value"]
    assert set(first) == BACKEND_KEYS
    single = {
        "endpoint": "AZURE_OPENAI_ENDPOINT",
        "deployment": "AZURE_OPENAI_DEPLOYMENT",
        "model": "AZURE_OPENAI_MODEL",
        "api_style": "AZURE_OPENAI_API_STYLE",
        "api_version": "AZURE_OPENAI_API_VERSION",
    }
    assert {key: first[key] for key in single} == {key: always[name] for key, name in single.items()}
    assert (first["rpm"], first["priority"], first["label"]) == ("openAiRequestsPerMinute", 1, "openAiLabel")

    # The others, built in main.bicep from each account's outputs.
    passed = bicep["main.bicep"]["modules"]["api"]["config"]["params"]
    others = passed["openAiPoolBackends"]
    assert others["loop_type"]["detail"]["array_name"] == "openAiBackendRegions"
    body = others["config"]
    assert set(body) == BACKEND_KEYS
    assert _reference(body["endpoint"], {"i": 0}) == "openAiPool[0].outputs.endpoint"
    assert _reference(body["deployment"], {"i": 0}) == "openAiPool[0].outputs.deploymentName"
    assert (body["model"], body["api_style"], body["api_version"]) == (
        "openAiModelName",
        "openAiApiStyle",
        "openAiApiVersion",
    )
    assert (body["rpm"], body["priority"]) == ("openAiRequestsPerMinute", 1)
    assert passed["openAiRequestsPerMinute"] == "openAiRequestsPerMinute"
    assert passed["openAiLabel"] == "openAiPrimaryLabel"
    assert passed["jobDeadlineSeconds"] == "jobDeadlineSeconds"


@pytest.mark.parametrize(
    ("extra_locations", "labels"),
    [
        ([], ["swedencentral"]),
        (["polandcentral", "East US 2"], ["swedencentral", "polandcentral", "eastus2"]),
        # Another account in the primary's region: a label of its own (the id is label/deployment).
        (["polandcentral", "swedencentral"], ["swedencentral", "polandcentral", "swedencentral-3"]),
    ],
    ids=["primary-alone", "three-regions", "second-account-in-the-primary-region"],
)
def test_the_backends_setting_as_arm_renders_it_is_a_pool_the_app_accepts(
    bicep: dict[str, dict[str, Any]], extra_locations: list[str], labels: list[str]
) -> None:
    """Renders AZURE_OPENAI_BACKENDS and the single-deployment settings from the parsed templates for
    a primary in swedencentral plus extra_locations, and reads them with the app's Settings."""
    main = bicep["main.bicep"]
    scope: dict[str, Any] = {
        "openAiBackendLocations": extra_locations,
        "openAiAccountLocation": "swedencentral",
    }
    regions = _evaluate(main["variables"]["openAiBackendRegions"]["value"], scope)
    primary_label = _evaluate(main["variables"]["openAiPrimaryLabel"]["value"], scope)
    scope |= {
        "openAiBackendRegions": regions,
        "openAiPrimaryLabel": primary_label,
        "openAiModelName": "gpt-image-2",
        "openAiApiStyle": "",
        "openAiApiVersion": "",
        "openAiRequestsPerMinute": 6,
    }
    for index, region in enumerate(regions):
        scope[f"openAiPool[{index}].outputs.endpoint"] = f"https://oai-token-{region}.openai.azure.com/"
        scope[f"openAiPool[{index}].outputs.deploymentName"] = "gpt-image-2"
    others = _evaluate(main["modules"]["api"]["config"]["params"]["openAiPoolBackends"], scope)

    api = bicep["app/api.bicep"]
    api_scope = {
        "openAiEndpoint": "https://oai-token.openai.azure.com/",
        "openAiDeploymentName": "gpt-image-2",
        "openAiModelName": "gpt-image-2",
        "openAiApiStyle": "",
        "openAiApiVersion": "",
        "openAiScope": "",
        "openAiRequestsPerMinute": 6,
        "openAiLabel": primary_label,
        "openAiPoolBackends": others,
        "jobDeadlineSeconds": 3600,
    }
    api_scope["openAiPrimaryBackend"] = _evaluate(
        api["variables"]["openAiPrimaryBackend"]["value"], api_scope
    )
    api_scope["openAiBackends"] = _evaluate(api["variables"]["openAiBackends"]["value"], api_scope)
    always, _ = app_settings(api)
    names = [name for name in always if name.startswith("AZURE_OPENAI_")] + [ENV_JOB_DEADLINE_SECONDS]
    env = {name: _evaluate(always[name], api_scope) for name in names}
    env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"

    pool_json = json.loads(env[ENV_OPENAI_BACKENDS])
    assert [set(item) for item in pool_json] == [set(BACKEND_KEYS)] * (1 + len(extra_locations))
    settings = Settings.from_env(env)
    assert [b.endpoint for b in settings.backends] == [
        "https://oai-token.openai.azure.com",
        *(f"https://oai-token-{region}.openai.azure.com" for region in regions),
    ]
    first = settings.backends[0]
    assert (first.endpoint, first.deployment, first.model) == (
        settings.openai_endpoint,
        settings.deployment,
        settings.model,
    )
    assert {(b.rpm, b.priority, b.model, b.api_style) for b in settings.backends} == {
        (6, 1, "gpt-image-2", ApiStyle.V1)
    }
    assert [b.label for b in settings.backends] == labels
    assert settings.job_deadline_seconds == 3600


def test_the_pool_parameters_have_the_documented_defaults(bicep: dict[str, dict[str, Any]]) -> None:
    params = bicep["main.bicep"]["parameters"]
    code_defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    entry = model_entry(DEFAULT_MODEL)
    assert entry is not None
    # One Global Standard unit of gpt-image-2 at the first quota tier (docs/models.md).
    assert default_of(params["openAiRequestsPerMinute"]) == entry.lifecycle.default_rpm == 6
    assert default_of(params["openAiDeploymentCapacity"]) == 1
    assert default_of(params["openAiBackendLocations"]) == []  # the primary alone
    assert params["openAiBackendLocations"]["type"] == "array"
    assert _decorator(params["openAiBackendLocations"], "max_length") + 1 == MAX_BACKENDS  # + the primary
    assert default_of(params["jobDeadlineSeconds"]) == code_defaults["job_deadline_seconds"] == 3600
    assert _decorator(params["jobDeadlineSeconds"], "max_value") == MAX_JOB_DEADLINE_SECONDS
    assert _decorator(params["jobDeadlineSeconds"], "min_value") == 5
    assert _decorator(params["openAiRequestsPerMinute"], "min_value") == 1

    api = bicep["app/api.bicep"]["parameters"]
    for name in ("openAiRequestsPerMinute", "jobDeadlineSeconds"):
        assert default_of(api[name]) == default_of(params[name]), name
        for kind in ("min_value", "max_value"):
            assert _decorator(api[name], kind) == _decorator(params[name], kind), (name, kind)

    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["openAiRequestsPerMinute"]["value"] == "${AZURE_OPENAI_REQUESTS_PER_MINUTE=6}"
    assert azd["openAiBackendLocations"]["value"] == "${AZURE_OPENAI_BACKEND_LOCATIONS=[]}"
    assert azd["jobDeadlineSeconds"]["value"] == "${JOB_DEADLINE_SECONDS=3600}"
