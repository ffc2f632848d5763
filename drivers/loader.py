"""Loading a driver from an explicit table, lazily: one mechanism for every system.

A table maps the inventory's driver name (a ``StrEnum``) to ``"module:Class"``; a name missing
from the table is an error that names the inventory key, never a silent skip.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from hybridops.errors import ConfigError

K = TypeVar("K", bound=StrEnum)


def load_driver(table: Mapping[K, str], kind: K, key: str, base: type[Any], *args: Any) -> Any:
    """Import and build the driver ``kind`` names; ``key`` is the inventory key, for errors."""
    target = table.get(kind)
    if target is None:
        raise ConfigError(f"{key}: no driver {kind!r}; known: {sorted(k.value for k in table)}")
    module, _, cls = target.partition(":")
    driver = getattr(importlib.import_module(module), cls)(*args)
    if not isinstance(driver, base):
        raise ConfigError(f"{key}: {target} is not a {base.__name__}")
    return driver


def driver_class(table: Mapping[K, str], kind: K, key: str) -> type[Any]:
    """The class ``kind`` names, imported but not built (for what it declares)."""
    target = table.get(kind)
    if target is None:
        raise ConfigError(f"{key}: no driver {kind!r}; known: {sorted(k.value for k in table)}")
    module, _, cls = target.partition(":")
    found: type[Any] = getattr(importlib.import_module(module), cls)
    return found
