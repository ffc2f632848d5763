"""Secret stores (drivers/secrets/): ``vault:`` through the real ``hvac`` client against a fake
Vault (tests/fakes/vault.py) that checks the token and the KV v2 path; values cached briefly;
an unresolved reference names the reference, never a value; drivers resolve through here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.secrets import SecretUnavailable, resolve_reference, resolve_secret
from drivers.secrets.azure_keyvault import URL_ENV as KV_URL_ENV
from drivers.secrets.gcp import ENDPOINT_ENV
from drivers.secrets.stores import forget
from hybridops.errors import ConfigError
from tests.fakes.azuredns import FakeKeyVault
from tests.fakes.clouddns import FakeSecretManager
from tests.fakes.vault import FakeVault

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

VALUE = "tsig-secret-value-0123456789"


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVault]:
    fake = FakeVault("hvs.test-token")
    fake.secrets[("secret", "hybridops/dns")] = {"tsig": VALUE}
    monkeypatch.setenv("VAULT_ADDR", fake.start())
    monkeypatch.setenv("VAULT_TOKEN", "hvs.test-token")
    forget()
    yield fake
    forget()
    fake.stop()


def test_a_vault_reference_reads_the_key_and_is_cached(vault: FakeVault) -> None:
    ref = "vault:secret/hybridops/dns#tsig"
    assert resolve_secret(ref) == VALUE
    assert resolve_secret(ref) == VALUE
    assert vault.reads == ["/v1/secret/data/hybridops/dns"]  # once: the second from the cache


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("vault:secret/hybridops/missing#tsig", "no such secret"),
        ("vault:secret/hybridops/dns#other", "no key"),
        ("vault:secret#tsig", "expected vault:MOUNT/PATH#KEY"),
        ("keyring:x", "scheme must be one of"),
    ],
)
def test_an_unresolved_reference_names_the_reference(vault: FakeVault, ref: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_reference(ref)
    assert ref in str(err.value) and why in str(err.value) and VALUE not in str(err.value)


def test_a_wrong_token_is_denied_and_a_dead_vault_is_retryable(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.wrong")
    with pytest.raises(ConfigError) as err:
        resolve_reference("vault:secret/hybridops/dns#tsig")
    assert "denied" in str(err.value)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    with pytest.raises(SecretUnavailable) as down:
        resolve_reference("vault:secret/hybridops/dns#tsig")
    assert down.value.retryable and VALUE not in str(down.value)


def test_env_and_file_still_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDOPS_TEST_SECRET", VALUE)
    assert resolve_secret("env:HYBRIDOPS_TEST_SECRET") == VALUE
    assert resolve_secret(None) is None


def test_a_driver_takes_its_secret_from_vault(vault: FakeVault) -> None:
    """The rfc2136 driver's TSIG secret as a Vault reference (any driver resolves through
    drivers.secrets)."""
    import base64

    from drivers.dns import make_dns_driver
    from hybridops.inventory import DnsSettings

    vault.secrets[("secret", "hybridops/dns")] = {"tsig": base64.b64encode(b"k" * 32).decode()}
    settings = DnsSettings.model_validate(
        {
            "driver": "rfc2136",
            "zone": "corp.example.com",
            "record": "db.corp.example.com",
            "server": "127.0.0.1",
            "tsig_key": "k",
            "credentials_ref": "vault:secret/hybridops/dns#tsig",
        }
    )
    make_dns_driver(settings)
    assert vault.reads == ["/v1/secret/data/hybridops/dns"]


@pytest.fixture
def secret_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSecretManager]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = FakeSecretManager("p1", "-", "-", key.public_key(), scope=CLOUD_PLATFORM)
    url = fake.start()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sa = tmp_path / "sa.json"
    sa.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p1",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "worker@p1.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{url}/token",
            }
        )
    )
    # Application Default Credentials from the key file; the client at the fake.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    monkeypatch.setenv(ENDPOINT_ENV, url)
    fake.versions["projects/p1/secrets/dns-key/versions/latest"] = VALUE
    fake.versions["projects/p1/secrets/dns-key/versions/2"] = VALUE + "-v2"
    forget()
    yield fake
    forget()
    fake.stop()


def test_a_gcp_secret_reference_reads_the_version(secret_manager: FakeSecretManager) -> None:
    assert resolve_secret("gcp-secret:p1/dns-key") == VALUE
    assert resolve_secret("gcp-secret:p1/dns-key/2") == VALUE + "-v2"
    # google-auth signs its own JWT for a service account (no token endpoint), as in production.
    assert secret_manager.self_signed >= 1
    assert "GET /v1/projects/p1/secrets/dns-key/versions/latest:access" in secret_manager.requests
    with pytest.raises(ConfigError) as err:
        resolve_reference("gcp-secret:p1/missing")
    assert "gcp-secret:p1/missing" in str(err.value) and "no such secret" in str(err.value)
    with pytest.raises(ConfigError):
        resolve_reference("gcp-secret:p1")


def test_a_key_the_service_does_not_know_is_a_denied_read(secret_manager: FakeSecretManager) -> None:
    secret_manager.public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(ConfigError) as err:
        resolve_reference("gcp-secret:p1/dns-key")
    assert "denied" in str(err.value) and VALUE not in str(err.value)


KV_SCOPE = "https://vault.azure.net/.default"


@pytest.fixture
def key_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKeyVault]:
    fake = FakeKeyVault("tenant-1", "client-1", "kv-client-secret-1", "-", "-", "-", scope=KV_SCOPE)
    host = fake.start(tmp_path)
    fake.secrets["dns-key"] = VALUE
    fake.secrets["dns-key/v0"] = VALUE + "-old"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca))
    monkeypatch.setenv(KV_URL_ENV, f"https://{host}")
    for key, value in {
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_CLIENT_SECRET": "kv-client-secret-1",
        "AZURE_AUTHORITY_HOST": host,
    }.items():
        monkeypatch.setenv(key, value)
    forget()
    yield fake
    forget()
    fake.stop()


def test_an_azure_keyvault_reference_answers_the_challenge(key_vault: FakeKeyVault) -> None:
    """The client's first request gets Key Vault's 401 challenge; the token it then fetches
    for the vault's scope from the authority the challenge names is taken."""
    assert resolve_secret("azure-keyvault:kv1/dns-key") == VALUE
    assert resolve_secret("azure-keyvault:kv1/dns-key/v0") == VALUE + "-old"
    assert any(r.endswith("/oauth2/v2.0/token") for r in key_vault.requests) and key_vault.tokens
    with pytest.raises(ConfigError) as err:
        resolve_reference("azure-keyvault:kv1/missing")
    assert "azure-keyvault:kv1/missing" in str(err.value) and "no such secret" in str(err.value)


def test_a_refused_client_is_a_denied_read(key_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret-123")
    with pytest.raises(ConfigError) as err:
        resolve_reference("azure-keyvault:kv1/dns-key")
    assert "denied" in str(err.value) and "not-the-secret-123" not in str(err.value)
