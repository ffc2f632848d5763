"""The explicit table of PostgreSQL drivers, imported lazily."""

from __future__ import annotations

from drivers.loader import load_driver
from drivers.postgres.base import PostgresDriver
from hybridops.inventory import Inventory, PostgresKind

DRIVERS: dict[PostgresKind, str] = {PostgresKind.LOCAL: "drivers.postgres.local:LocalPostgresDriver"}


def make_postgres_driver(inventory: Inventory) -> PostgresDriver:
    """The driver the inventory's ``postgres.driver`` names."""
    return load_driver(DRIVERS, inventory.postgres.driver, "postgres.driver", PostgresDriver, inventory)
