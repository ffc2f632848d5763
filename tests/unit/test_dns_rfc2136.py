"""The rfc2136 driver's settings: checked when the inventory loads, and a malformed TSIG secret
named by its reference, never shown. (The driver itself runs against the lab's real BIND in
tests/lab/test_bind.py.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.dns import make_dns_driver
from drivers.dns.rfc2136 import Rfc2136Driver
from hybridops.capabilities import Capability
from hybridops.errors import ConfigError
from hybridops.inventory import DnsKind, DnsSettings

BASE = {"driver": "rfc2136", "zone": "corp.example.com", "record": "db.corp.example.com"}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({}, "dns.server"),
        ({"server": "10.0.0.53", "tsig_key": "k"}, "dns.tsig_key"),
        ({"server": "10.0.0.53", "credentials_ref": "env:X"}, "dns.tsig_key"),
    ],
)
def test_settings_name_the_key_that_is_wrong(changes: dict[str, str], key: str) -> None:
    with pytest.raises(ValidationError) as err:
        DnsSettings.model_validate({**BASE, **changes})
    assert key in str(err.value)


def test_a_secret_that_is_not_base64_is_named_by_its_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "not base64 but secret!!"
    monkeypatch.setenv("HYBRIDOPS_TEST_TSIG", secret)
    settings = DnsSettings.model_validate(
        {**BASE, "server": "10.0.0.53", "tsig_key": "k", "credentials_ref": "env:HYBRIDOPS_TEST_TSIG"}
    )
    with pytest.raises(ConfigError) as err:
        make_dns_driver(settings)
    assert "env:HYBRIDOPS_TEST_TSIG" in str(err.value) and secret not in str(err.value)


def test_the_registry_has_it_and_it_declares_no_weighted_records() -> None:
    settings = DnsSettings.model_validate({**BASE, "server": "10.0.0.53"})
    assert settings.driver == DnsKind.RFC2136
    driver = make_dns_driver(settings)
    assert isinstance(driver, Rfc2136Driver)
    assert Capability.WEIGHTED not in driver.capabilities
