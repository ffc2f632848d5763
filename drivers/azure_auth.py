"""The Azure credential every Azure driver uses (DNS, Key Vault secrets): a service principal's
client secret when one is given, else ``DefaultAzureCredential`` (workload identity on AKS, a
managed identity, the environment). An authority other than Microsoft's own clouds (an Azure
Stack's, a private one) skips instance discovery, which only knows those."""

from __future__ import annotations

from typing import Any

from azure.identity import AzureAuthorityHosts, ClientSecretCredential, DefaultAzureCredential


def azure_credential(
    tenant_id: str | None, client_id: str | None, secret: str | None, authority_host: str | None
) -> Any:
    """A token credential for the arguments (see the module's docstring). ``secret`` needs
    ``tenant_id`` and ``client_id`` (the caller checks, naming its settings)."""
    options: dict[str, Any] = {}
    if authority_host:
        options["authority"] = authority_host
        known = {h.rstrip("/") for h in vars(AzureAuthorityHosts).values() if isinstance(h, str)}
        if authority_host.removeprefix("https://").rstrip("/") not in known:
            options["disable_instance_discovery"] = True
    if secret is not None:
        assert tenant_id and client_id, "a client secret needs its tenant and client ids"
        return ClientSecretCredential(tenant_id, client_id, secret, **options)
    return DefaultAzureCredential(**{k: v for k, v in options.items() if k == "authority"})
