"""One way to reach a Kubernetes API with the official ``kubernetes`` client, for every driver
that talks to one (the ``flux`` GitOps driver, the ``cnpg`` PostgreSQL driver): credentials
from secret references (an API address with a bearer token and CA, or a kubeconfig's content,
else the pod's in-cluster settings), held in memory only, and redacted from every message.

Building the client may block (a kubeconfig may run an exec credential plugin such as
kubelogin or gke-gcloud-auth-plugin): call :func:`api_client` in a thread.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml
from kubernetes import client, config  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from hybridops.errors import ConfigError
from hybridops.secrets import resolve_secret


def api_client(
    key: str,
    *,
    kubeconfig_ref: str | None = None,
    context: str | None = None,
    api_url: str | None = None,
    token_ref: str | None = None,
    ca_cert_ref: str | None = None,
    verify_tls: bool = True,
) -> client.ApiClient:
    """An API client: ``api_url`` with the bearer token ``token_ref`` (and the CA certificate
    ``ca_cert_ref``), else the kubeconfig ``kubeconfig_ref`` (its ``context``, else its current
    one), else in-cluster. :class:`ConfigError` naming ``key`` (the inventory key of these
    settings), never a secret's value, when the settings do not make a client."""
    cfg = client.Configuration()
    cfg.retries = 1
    if api_url:
        # The same loader as a kubeconfig's: it keeps the CA where the client can read it.
        cluster: dict[str, Any] = {"server": api_url, "insecure-skip-tls-verify": not verify_tls}
        ca = resolve_secret(ca_cert_ref)
        if ca:
            cluster["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
        token = resolve_secret(token_ref)
        kubeconfig: Any = {
            "clusters": [{"name": "api", "cluster": cluster}],
            "users": [{"name": "hybridops", "user": {"token": token.strip()} if token else {}}],
            "contexts": [{"name": "api", "context": {"cluster": "api", "user": "hybridops"}}],
            "current-context": "api",
        }
        context, what = None, f"{key}.api_url"
    elif kubeconfig_ref:
        text = resolve_secret(kubeconfig_ref) or ""
        try:
            kubeconfig = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{key}.kubeconfig_ref: not a kubeconfig (invalid YAML)") from None
        what = f"{key}.kubeconfig_ref"
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as err:
            raise ConfigError(f"{key}: no credentials configured and not in a cluster: {err}") from None
        return client.ApiClient(cfg)
    try:
        config.load_kube_config_from_dict(
            kubeconfig, context=context, client_configuration=cfg, persist_config=False
        )
    except config.ConfigException as err:
        raise ConfigError(f"{what}: {err}") from None
    return client.ApiClient(cfg)


def redact(api: client.ApiClient, text: str) -> str:
    """``text`` without the bearer token (read now: in-cluster tokens are refreshed)."""
    for value in (api.configuration.api_key or {}).values():
        secret = str(value).removeprefix("Bearer ").strip()
        if secret:
            text = text.replace(secret, "***")
    return text


def status_message(err: ApiException) -> str:
    """The Kubernetes ``Status`` message of a failed call, else its reason."""
    try:
        body = yaml.safe_load(err.body) if err.body else None
    except yaml.YAMLError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(err.reason or "error")
