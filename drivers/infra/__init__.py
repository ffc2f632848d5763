"""Infrastructure: the driver interface and its drivers (``lab``, ``terraform``)."""

from drivers.infra.base import AppDatabase, InfraDriver, IsolateTarget
from drivers.infra.registry import make_infra_driver

__all__ = ["AppDatabase", "InfraDriver", "IsolateTarget", "make_infra_driver"]
