"""The explicit table of PostgreSQL drivers, imported lazily."""

from __future__ import annotations

from activities.postgres.base import PostgresDriver
from hybridops.drivers import load_driver
from hybridops.inventory import Inventory, PostgresKind

DRIVERS: dict[PostgresKind, str] = {PostgresKind.LOCAL: "activities.postgres.local:LocalPostgresDriver"}


def make_postgres_driver(inventory: Inventory) -> PostgresDriver:
    """The driver the inventory's ``postgres.driver`` names."""
    return load_driver(DRIVERS, inventory.postgres.driver, "postgres.driver", PostgresDriver, inventory)
