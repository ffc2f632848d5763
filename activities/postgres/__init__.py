"""PostgreSQL: the driver interface and its drivers (``local``)."""

from activities.postgres.base import PostgresDriver
from activities.postgres.registry import make_postgres_driver

__all__ = ["PostgresDriver", "make_postgres_driver"]
