"""Infrastructure: the driver interface and its drivers (``lab``, ``terraform``)."""

from activities.infra.base import AppDatabase, InfraCapability, InfraDriver, IsolateTarget
from activities.infra.registry import make_infra_driver

__all__ = ["AppDatabase", "InfraCapability", "InfraDriver", "IsolateTarget", "make_infra_driver"]
