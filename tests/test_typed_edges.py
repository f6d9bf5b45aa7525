"""The edges between the layers are typed: each lower layer declares what it reads of the
settings (``*/config.py``) and the CLI's ``Settings`` satisfies every declaration; the API reads
the settings it was created with, never the environment's; a time a person gives is parsed once,
at the command line, into the UTC timestamp the layers take."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from data.dataset import parse_as_of
from monitoring.config import MonitoringConfig
from otd_risk.settings import Settings, get_settings
from serving.app import ServeOptions, create_app
from serving.config import ServingConfig
from training.config import RegistryConfig, TrainingConfig


@pytest.mark.parametrize(
    "config", [RegistryConfig, TrainingConfig, ServingConfig, MonitoringConfig]
)
def test_settings_has_every_member_a_layer_reads(tmp_path, config):
    # runtime_checkable: isinstance checks every declared member is present on the object.
    assert isinstance(Settings(home=tmp_path), config)


def test_a_config_without_a_member_is_not_one(tmp_path):
    """The check above can fail: an object lacking one declared member is refused."""

    class NoAlias:
        def __init__(self, settings: Settings) -> None:
            self._settings = settings

        def __getattr__(self, name: str):
            if name == "champion_alias":
                raise AttributeError(name)
            return getattr(self._settings, name)

    assert not isinstance(NoAlias(Settings(home=tmp_path)), RegistryConfig)


def test_the_api_answers_in_its_own_settings_language(tmp_path, monkeypatch):
    """Issue 16: an app answered in the environment's default language (``get_settings()``)
    instead of the one it was created with, until its startup had run."""
    monkeypatch.setenv("OTD_RISK_DEFAULT_LANG", "en")
    get_settings.cache_clear()
    try:
        app = create_app(
            Settings(home=tmp_path, default_lang="zh"),
            ServeOptions(reload_seconds=0, load_data=False),
        )
        # Not entered as a context manager: startup (which loads the model) does not run.
        client = TestClient(app)
        assert client.get("/v1/messages").json()["lang"] == "zh"
        assert client.get("/v1/messages", params={"lang": "en"}).json()["lang"] == "en"
        said = client.get("/v1/messages", headers={"Accept-Language": "en-GB"}).json()
        assert said["lang"] == "en"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("given", "tz", "expected"),
    [
        ("2024-03-01T08:00", "Asia/Shanghai", "2024-03-01T00:00:00+00:00"),
        ("2024-03-01", "Europe/Berlin", "2024-02-29T23:00:00+00:00"),
        ("2024-03-01T08:00:00+08:00", "Europe/Berlin", "2024-03-01T00:00:00+00:00"),
        ("2024-03-01T08:00Z", "Asia/Shanghai", "2024-03-01T08:00:00+00:00"),
    ],
)
def test_a_time_given_is_read_in_the_dataset_zone_unless_it_has_an_offset(given, tz, expected):
    parsed = parse_as_of(given, tz)
    assert parsed == pd.Timestamp(expected)
    assert str(parsed.tz) == "UTC"


def test_no_time_given_stays_none():
    # The layers then take the dataset's snapshot time, never the clock.
    assert parse_as_of(None, "Asia/Shanghai") is None


@pytest.mark.parametrize(
    ("given", "what"),
    [("2024-03-10T02:30", "does not exist"), ("2024-11-03T01:30", "is ambiguous")],
)
def test_a_local_time_a_clock_change_skipped_or_doubled_is_said_with_the_fix(given, what):
    with pytest.raises(ValueError, match=f"{what} in America/New_York.*UTC offset"):
        parse_as_of(given, "America/New_York")
    # With its offset the same time is one instant.
    assert parse_as_of(f"{given}-05:00", "America/New_York") == pd.Timestamp(f"{given}-05:00")
