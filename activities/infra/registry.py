"""The explicit table of infrastructure drivers, imported lazily."""

from __future__ import annotations

import importlib

from activities.infra.base import InfraDriver
from hybridops.errors import ConfigError
from hybridops.inventory import InfraDriver as Kind
from hybridops.inventory import InfraSettings

DRIVERS: dict[Kind, str] = {Kind.LAB: "activities.infra.lab:LabInfraDriver"}


def make_infra_driver(settings: InfraSettings) -> InfraDriver:
    """The driver the inventory's ``infra.driver`` names."""
    target = DRIVERS.get(settings.driver)
    if target is None:
        raise ConfigError(f"infra.driver: no driver {settings.driver!r}")
    module, _, cls = target.partition(":")
    driver: InfraDriver = getattr(importlib.import_module(module), cls)(settings)
    return driver
