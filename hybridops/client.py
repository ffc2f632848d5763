"""The Temporal client factory: the one place the data converter is built.

Every payload passes through the pydantic data converter (DESIGN.md rule 5).
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from hybridops.inventory import TemporalSettings
from hybridops.secrets import resolve_secret

DATA_CONVERTER = pydantic_data_converter


async def connect(settings: TemporalSettings) -> Client:
    """A client for the inventory's Temporal, with HybridOps' data converter."""
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=DATA_CONVERTER,
        api_key=resolve_secret(settings.api_key_ref),
        tls=settings.tls,
    )
