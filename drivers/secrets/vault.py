"""``vault:MOUNT/PATH#KEY``: one key of a HashiCorp Vault KV version 2 secret, through ``hvac``.

The Vault address, token and namespace come from hvac's usual environment (``VAULT_ADDR``,
``VAULT_TOKEN``, ``VAULT_NAMESPACE``, ``VAULT_CACERT``): the worker's, never the inventory's.
"""

from __future__ import annotations

import hvac
import hvac.exceptions
import requests

from drivers.secrets.stores import SecretUnavailable
from hybridops.errors import ConfigError


def read(ref: str, rest: str) -> str:
    """The value of ``KEY`` in the latest version of ``MOUNT/PATH``."""
    path, _, key = rest.partition("#")
    mount, _, sub = path.partition("/")
    if not (mount and sub and key):
        raise ConfigError(f"secret reference {ref!r}: expected vault:MOUNT/PATH#KEY")
    try:
        answer = hvac.Client().secrets.kv.v2.read_secret_version(
            path=sub, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        raise ConfigError(f"secret reference {ref!r}: no such secret in Vault") from None
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
        raise ConfigError(f"secret reference {ref!r}: Vault denied the read (token or policy)") from None
    except (hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError, requests.RequestException) as err:
        raise SecretUnavailable(
            f"secret reference {ref!r}: Vault did not answer ({type(err).__name__})"
        ) from None
    except hvac.exceptions.VaultError as err:
        raise ConfigError(f"secret reference {ref!r}: Vault refused ({type(err).__name__})") from None
    data = answer.get("data", {}).get("data", {})
    if key not in data:
        raise ConfigError(f"secret reference {ref!r}: the secret has no key {key!r}")
    return str(data[key])
