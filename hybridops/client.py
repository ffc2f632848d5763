"""The Temporal client factory: the one place the data converter is built.

Every payload passes through the pydantic data converter, and through the encryption codec
when the inventory configures a key (DESIGN.md rule 5; :mod:`hybridops.codec`).
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from hybridops.codec import codec_for
from hybridops.inventory import TemporalSettings
from hybridops.secrets import resolve_secret

DATA_CONVERTER = pydantic_data_converter
"""The converter without encryption: for plain histories (the stored ones) and for payloads
that :func:`data_converter` already decrypted."""


def data_converter(settings: TemporalSettings) -> DataConverter:
    """HybridOps' data converter for ``settings``: pydantic, plus the encryption codec when
    ``temporal.codec`` lists keys. Raises a ConfigError naming the key when one is unusable.

    With the codec, failures' messages and stack traces move into an encoded (so encrypted)
    attribute too: a rejection's message carries the approver's comment, an error may quote
    an input."""
    codec = codec_for(settings.codec)
    if codec is None:
        return DATA_CONVERTER
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: TemporalSettings) -> Client:
    """A client for the inventory's Temporal, with HybridOps' data converter."""
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=data_converter(settings),
        api_key=resolve_secret(settings.api_key_ref),
        tls=settings.tls,
    )
