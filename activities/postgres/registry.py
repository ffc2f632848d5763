"""The explicit table of PostgreSQL drivers, imported lazily."""

from __future__ import annotations

import importlib

from activities.postgres.base import PostgresDriver
from hybridops.errors import ConfigError
from hybridops.inventory import Inventory
from hybridops.inventory import PostgresDriver as Kind

DRIVERS: dict[Kind, str] = {Kind.LOCAL: "activities.postgres.local:LocalPostgresDriver"}


def make_postgres_driver(inventory: Inventory) -> PostgresDriver:
    """The driver the inventory's ``postgres.driver`` names."""
    target = DRIVERS.get(inventory.postgres.driver)
    if target is None:
        raise ConfigError(f"postgres.driver: no driver {inventory.postgres.driver!r}")
    module, _, cls = target.partition(":")
    driver: PostgresDriver = getattr(importlib.import_module(module), cls)(inventory)
    return driver
