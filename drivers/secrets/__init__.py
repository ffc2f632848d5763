"""Secret stores: references resolved where the secret is used (activities, drivers), never
in workflows. ``env:`` and ``file:`` are the kernel's (:mod:`hybridops.secrets`); the stores
here are ``vault:MOUNT/PATH#KEY`` (HashiCorp Vault's KV v2, through ``hvac``),
``gcp-secret:PROJECT/NAME[/VERSION]`` (Google Cloud Secret Manager) and
``azure-keyvault:VAULT/NAME[/VERSION]`` (Azure Key Vault)."""

from drivers.secrets.stores import CACHE_S, SecretUnavailable, resolve_reference, resolve_secret

__all__ = ["CACHE_S", "SecretUnavailable", "resolve_reference", "resolve_secret"]
