"""Infrastructure: the driver interface and its drivers (``lab``, ``terraform``)."""

from drivers.infra.base import AppDatabase, InfraCapability, InfraDriver, IsolateTarget
from drivers.infra.registry import make_infra_driver

__all__ = ["AppDatabase", "InfraCapability", "InfraDriver", "IsolateTarget", "make_infra_driver"]
