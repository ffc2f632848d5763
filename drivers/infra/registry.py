"""The explicit table of infrastructure drivers, imported lazily."""

from __future__ import annotations

from drivers.infra.base import InfraDriver
from drivers.loader import load_driver
from hybridops.inventory import InfraKind, InfraSettings

DRIVERS: dict[InfraKind, str] = {
    InfraKind.LAB: "drivers.infra.lab:LabInfraDriver",
    InfraKind.TERRAFORM: "drivers.infra.terraform:TerraformInfraDriver",
}


def make_infra_driver(settings: InfraSettings) -> InfraDriver:
    """The driver the inventory's ``infra.driver`` names."""
    return load_driver(DRIVERS, settings.driver, "infra.driver", InfraDriver, settings)
