"""The explicit table of DNS drivers, imported lazily."""

from __future__ import annotations

from drivers.dns.base import DnsDriver
from drivers.loader import load_driver
from hybridops.inventory import DnsKind, DnsSettings

DRIVERS: dict[DnsKind, str] = {
    DnsKind.ROUTE53: "drivers.dns.route53:Route53Driver",
    DnsKind.RFC2136: "drivers.dns.rfc2136:Rfc2136Driver",
    DnsKind.CLOUDDNS: "drivers.dns.clouddns:CloudDnsDriver",
    DnsKind.AZUREDNS: "drivers.dns.azuredns:AzureDnsDriver",
}


def make_dns_driver(settings: DnsSettings) -> DnsDriver:
    """The driver the inventory's ``dns.driver`` names."""
    return load_driver(DRIVERS, settings.driver, "dns.driver", DnsDriver, settings)
