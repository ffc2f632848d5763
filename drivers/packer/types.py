"""What the Packer runner returns. Every model may be recorded in a history: none holds a secret
(the texts are copied from Packer's output with every secret redacted)."""

from __future__ import annotations

from pydantic import Field

from hybridops.contracts.base import Contract


class PackerArtifact(Contract):
    """One artifact a build produced, from Packer's machine-readable ``artifact`` lines."""

    build: str
    """The build that made it (``qemu.rke2-node``: source type and name)."""
    index: int = 0
    """Its index among the build's artifacts."""
    builder_id: str = ""
    """The builder's unique id (``transcend.qemu``, ``Azure.ResourceManagement.VMImage``)."""
    id: str = ""
    """The artifact's id: an image id, a managed image's resource id, ``VM`` for local files."""
    string: str = ""
    """Packer's human description of it."""
    files: list[str] = Field(default_factory=list)
    """Files it is made of (local builders), as Packer lists them."""
    files_count: int = 0


class PackerBuildResult(Contract):
    """What ``packer build`` produced."""

    template: str
    """The template directory's name (``packer``) or the template file's."""
    artifacts: list[PackerArtifact] = Field(default_factory=list)
    builds: list[str] = Field(default_factory=list)
    """Builds that finished (whether or not they produced an artifact)."""
    seconds: float = 0.0

    @property
    def artifact_ids(self) -> dict[str, list[str]]:
        """Artifact ids by build: ``{"qemu.rke2-node": ["VM"], ...}``."""
        ids: dict[str, list[str]] = {}
        for artifact in self.artifacts:
            ids.setdefault(artifact.build, []).append(artifact.id)
        return ids


class PackerValidation(Contract):
    """What ``packer validate`` said about a template that is valid."""

    template: str
    warnings: list[str] = Field(default_factory=list)
