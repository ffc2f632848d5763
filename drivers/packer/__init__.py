"""Packer: the runner that drives the ``packer`` CLI through its machine-readable output (init,
validate, build), its result types and its errors. The templates it builds are in
``infra/packer/``."""

from drivers.packer.errors import (
    PackerAuthError,
    PackerBuildFailed,
    PackerInitFailed,
    PackerTemplateInvalid,
    PackerTimeout,
)
from drivers.packer.runner import MachineLine, PackerRunner, parse_line, unescape
from drivers.packer.types import PackerArtifact, PackerBuildResult, PackerValidation

__all__ = [
    "MachineLine",
    "PackerArtifact",
    "PackerAuthError",
    "PackerBuildFailed",
    "PackerBuildResult",
    "PackerInitFailed",
    "PackerRunner",
    "PackerTemplateInvalid",
    "PackerTimeout",
    "PackerValidation",
    "parse_line",
    "unescape",
]
