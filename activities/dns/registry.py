"""The explicit table of DNS drivers, imported lazily."""

from __future__ import annotations

import importlib

from activities.dns.base import DnsDriver
from hybridops.errors import ConfigError
from hybridops.inventory import DnsDriver as Kind
from hybridops.inventory import DnsSettings

DRIVERS: dict[Kind, str] = {Kind.ROUTE53: "activities.dns.route53:Route53Driver"}


def make_dns_driver(settings: DnsSettings) -> DnsDriver:
    """The driver the inventory's ``dns.driver`` names."""
    target = DRIVERS.get(settings.driver)
    if target is None:
        raise ConfigError(f"dns.driver: no driver {settings.driver!r}")
    module, _, cls = target.partition(":")
    driver: DnsDriver = getattr(importlib.import_module(module), cls)(settings)
    return driver
