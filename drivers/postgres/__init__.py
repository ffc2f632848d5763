"""PostgreSQL: the driver interface and its drivers (``local``)."""

from drivers.postgres.base import PostgresDriver
from drivers.postgres.registry import make_postgres_driver

__all__ = ["PostgresDriver", "make_postgres_driver"]
