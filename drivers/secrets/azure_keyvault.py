"""``azure-keyvault:VAULT/NAME[/VERSION]``: an Azure Key Vault secret (its current version when
none is named), through ``azure-keyvault-secrets``. The credential is the worker's:
``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and ``AZURE_CLIENT_SECRET`` when set (with
``AZURE_AUTHORITY_HOST``), else ``DefaultAzureCredential`` (workload identity, managed identity).
``HYBRIDOPS_KEYVAULT_URL`` (``https://{vault}.vault.example``) places the vaults elsewhere than
``https://VAULT.vault.azure.net`` (a sovereign cloud, or the tests' fake).
"""

from __future__ import annotations

import os

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import CredentialUnavailableError
from azure.keyvault.secrets import SecretClient

from drivers.azure_auth import azure_credential
from drivers.secrets.stores import SecretUnavailable
from hybridops.errors import ConfigError

URL_ENV = "HYBRIDOPS_KEYVAULT_URL"
DEFAULT_URL = "https://{vault}.vault.azure.net"


def read(ref: str, rest: str) -> str:
    parts = rest.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"secret reference {ref!r}: expected azure-keyvault:VAULT/NAME[/VERSION]")
    vault, name, version = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    template = os.environ.get(URL_ENV, DEFAULT_URL)
    env = os.environ
    secret = env.get("AZURE_CLIENT_SECRET")
    try:
        credential = azure_credential(
            env.get("AZURE_TENANT_ID"),
            env.get("AZURE_CLIENT_ID"),
            secret if env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID") else None,
            env.get("AZURE_AUTHORITY_HOST"),
        )
        client = SecretClient(
            template.format(vault=vault),
            credential,
            # The challenge's resource is checked against the vault's domain: only Azure's own.
            verify_challenge_resource=template == DEFAULT_URL,
        )
        value = client.get_secret(name, version).value
    except ResourceNotFoundError:
        raise ConfigError(f"secret reference {ref!r}: no such secret in Key Vault") from None
    except (ClientAuthenticationError, CredentialUnavailableError):
        raise ConfigError(f"secret reference {ref!r}: Key Vault denied the read (credentials)") from None
    except HttpResponseError as err:
        if err.status_code == 403:
            raise ConfigError(
                f"secret reference {ref!r}: Key Vault denied the read (access policy)"
            ) from None
        raise SecretUnavailable(f"secret reference {ref!r}: Key Vault answered {err.status_code}") from None
    except (ServiceRequestError, OSError) as err:
        raise SecretUnavailable(
            f"secret reference {ref!r}: Key Vault did not answer ({type(err).__name__})"
        ) from None
    if value is None:
        raise ConfigError(f"secret reference {ref!r}: the secret has no value")
    return value
