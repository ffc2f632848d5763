"""The explicit table of infrastructure drivers, imported lazily."""

from __future__ import annotations

from activities.infra.base import InfraDriver
from hybridops.drivers import load_driver
from hybridops.inventory import InfraKind, InfraSettings

DRIVERS: dict[InfraKind, str] = {
    InfraKind.LAB: "activities.infra.lab:LabInfraDriver",
    InfraKind.TERRAFORM: "activities.infra.terraform:TerraformInfraDriver",
}


def make_infra_driver(settings: InfraSettings) -> InfraDriver:
    """The driver the inventory's ``infra.driver`` names."""
    return load_driver(DRIVERS, settings.driver, "infra.driver", InfraDriver, settings)
