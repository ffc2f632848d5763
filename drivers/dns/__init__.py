"""DNS: the driver interface, its value types, and the drivers (``route53``)."""

from drivers.dns.base import DnsCapability, DnsDriver, Record, RecordChange
from drivers.dns.registry import make_dns_driver

__all__ = ["DnsCapability", "DnsDriver", "Record", "RecordChange", "make_dns_driver"]
