"""Infrastructure: the driver interface and its drivers (``lab``; ``terraform`` later)."""

from activities.infra.base import AppDatabase, InfraDriver
from activities.infra.registry import make_infra_driver

__all__ = ["AppDatabase", "InfraDriver", "make_infra_driver"]
