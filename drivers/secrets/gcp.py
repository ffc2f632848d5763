"""``gcp-secret:PROJECT/NAME[/VERSION]``: a Google Cloud Secret Manager secret version
(``latest`` when none is named), through ``google-cloud-secret-manager`` over its REST
transport, with Application Default Credentials (workload identity on GKE, the metadata
server, ``GOOGLE_APPLICATION_CREDENTIALS``). ``HYBRIDOPS_GCP_SECRET_ENDPOINT`` points the client
at another endpoint (a private one, or the tests' fake).
"""

from __future__ import annotations

import os

import google.auth.exceptions
from google.api_core import exceptions as gexc
from google.cloud import secretmanager

from drivers.secrets.stores import SecretUnavailable
from hybridops.errors import ConfigError

ENDPOINT_ENV = "HYBRIDOPS_GCP_SECRET_ENDPOINT"


def read(ref: str, rest: str) -> str:
    parts = rest.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"secret reference {ref!r}: expected gcp-secret:PROJECT/NAME[/VERSION]")
    project, name, version = parts[0], parts[1], parts[2] if len(parts) == 3 else "latest"
    endpoint = os.environ.get(ENDPOINT_ENV)
    try:
        client = secretmanager.SecretManagerServiceClient(
            transport="rest", client_options={"api_endpoint": endpoint} if endpoint else None
        )
        answer = client.access_secret_version(
            name=f"projects/{project}/secrets/{name}/versions/{version}", timeout=10
        )
    except gexc.NotFound:
        raise ConfigError(f"secret reference {ref!r}: no such secret version in Secret Manager") from None
    except (
        gexc.PermissionDenied,
        gexc.Unauthenticated,
        gexc.Unauthorized,
        gexc.Forbidden,
        google.auth.exceptions.RefreshError,
    ):
        raise ConfigError(f"secret reference {ref!r}: Secret Manager denied the read (credentials)") from None
    except google.auth.exceptions.DefaultCredentialsError:
        raise ConfigError(f"secret reference {ref!r}: no Google credentials on this worker") from None
    except (gexc.GoogleAPICallError, google.auth.exceptions.TransportError, OSError) as err:
        raise SecretUnavailable(
            f"secret reference {ref!r}: Secret Manager did not answer ({type(err).__name__})"
        ) from None
    return str(answer.payload.data.decode())
