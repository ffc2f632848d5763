"""The unit tests run in the environment the session started with: a lab test that ran before
them in the same session must have put its variables back (tests/conftest.py:lab_environment)."""

from __future__ import annotations

import os

import pytest

from hybridops.constants import FAULTS_DIR_ENV
from hybridops.lab.layout import ALERT_TOKEN_ENV, DNS_KEYS_ENV
from tests.conftest import ENV_AT_START

LAB_VARIABLES = ("HYBRIDOPS_INVENTORY", FAULTS_DIR_ENV, DNS_KEYS_ENV, ALERT_TOKEN_ENV)
"""What ``Lab.env()`` sets."""


@pytest.fixture(autouse=True)
def _no_lab_environment() -> None:
    leaked = sorted(k for k in LAB_VARIABLES if os.environ.get(k) != ENV_AT_START.get(k))
    assert not leaked, f"a lab's variables left in the environment: {leaked}"
