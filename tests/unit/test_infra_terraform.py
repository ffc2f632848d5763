"""The ``terraform`` infra driver: a burst node pool as the ``node_count`` of a root
configuration. Against the real Terraform CLI on ``infra/terraform/lab`` (no provider to
download) where one is installed, and its configuration errors everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drivers.infra import make_infra_driver
from hybridops.contracts.base import Cloud
from hybridops.errors import ConfigError
from hybridops.inventory import InfraKind, InfraSettings, TerraformSettings

TF = Path(__file__).resolve().parents[2] / "infra" / "terraform"


def settings(tmp_path: Path, **tf: object) -> InfraSettings:
    return InfraSettings(driver=InfraKind.TERRAFORM, terraform=TerraformSettings(**tf))  # type: ignore[arg-type]


def test_configuration_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"infra\.terraform\.work_root"):
        make_infra_driver(settings(tmp_path))
    with pytest.raises(ConfigError, match=r"infra\.terraform\.config_root"):
        make_infra_driver(settings(tmp_path, config_root=tmp_path / "missing", work_root=tmp_path))


def test_each_root_gets_its_own_backend_settings_and_variables(tmp_path: Path) -> None:
    """The azure root's azurerm backend and the gcp root's gcs backend take other keys: each
    root's own settings go over the shared ones; a root not in ``targets`` is named."""
    infra = make_infra_driver(
        settings(
            tmp_path,
            work_root=tmp_path,
            backend_config={"key": "burst.tfstate"},
            variables={"vm_size": "x"},
            target_backend_config={"gcp": {"bucket": "tf-state", "prefix": "burst"}},
            target_variables={"gcp": {"project": "corp-dr"}},
        )
    )
    assert infra._runner(Cloud.GCP).backend_config == {
        "key": "burst.tfstate",
        "bucket": "tf-state",
        "prefix": "burst",
    }
    assert infra._runner(Cloud.AZURE).backend_config == {"key": "burst.tfstate"}
    assert infra._variables(Cloud.GCP) == {"vm_size": "x", "project": "corp-dr"}
    assert infra._variables(Cloud.AZURE) == {"vm_size": "x"}
    with pytest.raises(ValueError, match="target_variables: aws is not a root in targets"):
        TerraformSettings(target_variables={"aws": {}})


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform CLI on this machine")
async def test_scale_a_pool_with_the_real_terraform(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(TF / "lab", config / "lab")  # local state lives next to the configuration
    rc = tmp_path / "terraformrc"
    rc.write_text("")
    infra = make_infra_driver(
        settings(
            tmp_path,
            config_root=config,
            work_root=tmp_path / "work",
            targets={"azure": "lab"},
            env={"TF_CLI_CONFIG_FILE": str(rc)},
        )
    )
    assert await infra.pool_nodes(Cloud.AZURE) == 0
    assert await infra.scale_pool(Cloud.AZURE, 3, "wf-1")
    assert await infra.pool_nodes(Cloud.AZURE) == 3
    assert not await infra.scale_pool(Cloud.AZURE, 3, "wf-1")  # converged: nothing to apply
    assert await infra.scale_pool(Cloud.AZURE, 0, "wf-1")  # scale-in deletes only pool nodes
    assert await infra.pool_nodes(Cloud.AZURE) == 0
    with pytest.raises(ConfigError, match="no root configuration for gcp"):
        await infra.pool_nodes(Cloud.GCP)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform CLI on this machine")
async def test_a_failover_prepare_scales_up_and_its_release_back_to_the_size_before(tmp_path: Path) -> None:
    """prepare with the policy's failover size: the size before is recorded before the apply
    (kept across a retry), release scales back to it and forgets it; a pool already larger
    is never scaled down, and a release of a run that changed nothing changes nothing."""
    config = tmp_path / "config"
    shutil.copytree(TF / "lab", config / "lab")
    rc = tmp_path / "terraformrc"
    rc.write_text("")
    work = tmp_path / "work"
    infra = make_infra_driver(
        settings(
            tmp_path,
            config_root=config,
            work_root=work,
            targets={"azure": "lab"},
            env={"TF_CLI_CONFIG_FILE": str(rc)},
        )
    )
    assert await infra.scale_pool(Cloud.AZURE, 1, "burst-1")
    assert await infra.prepare(Cloud.AZURE, "failover/1", nodes=3)
    assert await infra.pool_nodes(Cloud.AZURE) == 3
    records = list((work / "prepared" / "lab").iterdir())
    assert len(records) == 1 and json.loads(records[0].read_text())["nodes_before"] == 1
    assert not await infra.prepare(Cloud.AZURE, "failover/1", nodes=3), "a retry converges"
    assert json.loads(records[0].read_text())["nodes_before"] == 1, "the size before is kept"
    assert not await infra.release(Cloud.AZURE, "failover-other"), "not this run's"
    assert await infra.release(Cloud.AZURE, "failover/1")
    assert await infra.pool_nodes(Cloud.AZURE) == 1 and not records[0].exists()
    assert not await infra.release(Cloud.AZURE, "failover/1"), "released once"
    # Larger already: never scaled down, nothing recorded, nothing to release.
    await infra.prepare(Cloud.AZURE, "failover-2", nodes=0)  # the run id is a variable: applied
    assert await infra.pool_nodes(Cloud.AZURE) == 1 and list((work / "prepared" / "lab").iterdir()) == []
    assert not await infra.release(Cloud.AZURE, "failover-2")
