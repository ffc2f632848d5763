"""DNS: the driver interface, its value types, and the drivers (``route53``)."""

from drivers.dns.base import DnsDriver, Record, RecordChange, ZoneProbe
from drivers.dns.registry import make_dns_driver

__all__ = ["DnsDriver", "Record", "RecordChange", "ZoneProbe", "make_dns_driver"]
