"""The real SCMS export, read once per session by the adapter tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_BESIDE_REPO = Path(__file__).resolve().parents[3] / "shared/data/scms"
SCMS_ZIP = Path(
    os.environ.get("OTD_RISK_SCMS_ZIP", _BESIDE_REPO / "SCMS_Delivery_History_Dataset.csv.zip")
)
"""Next to the repository (``../shared/data/scms``) unless ``OTD_RISK_SCMS_ZIP`` says otherwise."""


@pytest.fixture(scope="session")
def scms_zip() -> Path:
    if not SCMS_ZIP.is_file():
        pytest.skip(f"SCMS export not found at {SCMS_ZIP}; set OTD_RISK_SCMS_ZIP to its path")
    return SCMS_ZIP


@pytest.fixture(scope="session")
def scms_dataset(scms_zip):
    from data.adapters.base import run_adapter
    from data.adapters.scms import SCMS

    return run_adapter(SCMS, scms_zip)
