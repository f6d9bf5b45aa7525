"""Settings and options a person gets wrong: one line naming the variable (or option), the bad
value and what is allowed, exit code 2, no traceback, from every command (issue 15, items 12-13).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from otd_risk.cli import app
from otd_risk.settings import NOT_SETTINGS, Settings, SettingsError, env_name, get_settings

OTD_RISK = Path(sys.executable).with_name("otd-risk")


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for key in list(os.environ):
        if key.upper().startswith("OTD_RISK_") and key not in NOT_SETTINGS:
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTD_RISK_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def _minimal_args(command: click.Command) -> list[str]:
    """Values for the required parameters (never used: the settings are checked first)."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        value = param.type.choices[0] if isinstance(param.type, click.Choice) else "x"
        args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_every_command_is_checked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"validate", "train", "score", "serve", "monitor", "retrain", "demo"} <= names
    assert {"keys create", "keys list", "import scms", "simulate", "features"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_a_bad_setting_is_one_line_and_exit_2_from_every_command(path, command):
    result = CliRunner().invoke(
        app, [*path, *_minimal_args(command)], env={"OTD_RISK_DEFAULT_LANG": "fr"}
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: OTD_RISK_DEFAULT_LANG='fr' in the environment is not allowed: use 'en' or 'zh'"
    ]


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"OTD_RISK_TIMEZONE": "Mars/Olympus"},
            "OTD_RISK_TIMEZONE='Mars/Olympus' in the environment: unknown time zone "
            "'Mars/Olympus'; use an IANA name such as 'Asia/Shanghai' or 'UTC'",
        ),
        (
            {"OTD_RISK_LATE_GRACE_DAYS": "-1"},
            "OTD_RISK_LATE_GRACE_DAYS='-1' in the environment: expected greater than or equal to 0",
        ),
        (
            {"OTD_RISK_PROMOTION_METRIC": "accuracy"},
            "OTD_RISK_PROMOTION_METRIC='accuracy' in the environment is not allowed: use "
            "'pr_auc', 'roc_auc' or 'brier'",
        ),
        (
            {"OTD_RISK_EXCLUDE_FEATURES": "a,b"},
            "OTD_RISK_EXCLUDE_FEATURES in the environment is not a JSON list; write it as "
            '["first", "second"] (or [] for none)',
        ),
        (
            {"OTD_RISK_FOO": "1"},
            "unknown otd-risk setting(s) in the environment: OTD_RISK_FOO; unset or rename them",
        ),
        (
            {"OTD_RISK_VALIDATON_DAYS": "30"},
            "OTD_RISK_VALIDATON_DAYS (did you mean OTD_RISK_VALIDATION_DAYS?)",
        ),
    ],
)
def test_settings_errors_name_the_variable_the_value_and_what_is_allowed(env, said):
    result = CliRunner().invoke(app, ["validate", "--data", "x"], env=env)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert said in result.stderr


def test_an_unknown_key_in_dotenv_is_named_with_the_closest_setting(tmp_path):
    (tmp_path / ".env").write_text("OTD_RISK_TIMEZON=Asia/Shanghai\n")
    result = CliRunner().invoke(app, ["validate", "--data", "x"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: OTD_RISK_TIMEZON in .env is not a setting of otd-risk (did you mean "
        "OTD_RISK_TIMEZONE?); remove it or correct its name (the settings are listed in the "
        "README's Configuration table and in otd_risk/settings.py)"
    )


def test_a_bad_value_in_dotenv_says_so(tmp_path):
    (tmp_path / ".env").write_text("OTD_RISK_DEFAULT_LANG=fr\n")
    with pytest.raises(SettingsError, match=r"^OTD_RISK_DEFAULT_LANG='fr' in \.env is not"):
        get_settings()


def test_variables_read_elsewhere_are_not_refused(monkeypatch):
    # The tests' own variables are read by the tests.
    assert {"OTD_RISK_TEST_POSTGRES_URL", "OTD_RISK_SCMS_ZIP"} <= set(NOT_SETTINGS)
    for name in NOT_SETTINGS:
        monkeypatch.setenv(name, "1")
    assert get_settings().default_lang == "en"
    # None of them shadows a setting.
    assert not set(NOT_SETTINGS) & {env_name(f) for f in Settings.model_fields}


def test_a_subprocess_prints_no_traceback():
    env = {**os.environ, "OTD_RISK_DEFAULT_LANG": "fr"}
    run = subprocess.run(
        [str(OTD_RISK), "train", "--data", "x"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "pydantic" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "error: OTD_RISK_DEFAULT_LANG='fr' in the environment is not allowed: use 'en' or 'zh'"
    ]


def test_help_works_whatever_the_settings():
    result = CliRunner().invoke(app, ["monitor", "--help"], env={"OTD_RISK_FOO": "1"})
    assert result.exit_code == 0 and "--since" in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["monitor", "--since", "garbage"], "--since"),
        (["score", "--out", "x.csv", "--as-of", "garbage"], "--as-of"),
        (["train", "--cutoff", "garbage"], "--cutoff"),
        (["features", "--out", "x.csv", "--as-of", "yesterday"], "--as-of"),
    ],
)
def test_a_time_option_that_is_not_a_time_is_a_usage_error(args, option):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    said = " ".join(result.stderr.replace("│", " ").split())
    assert f"Invalid value for '{option}'" in said
    assert "is not a time; write it in ISO 8601, such as 2024-03-01" in said


def test_score_refuses_a_language_it_does_not_have():
    result = CliRunner().invoke(
        app, ["score", "--out", "x.csv", "--lang", "fr"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    said = " ".join(result.stderr.replace("│", " ").split())
    assert "Invalid value for '--lang': 'fr' is not one of 'en', 'zh'" in said


def test_serve_refuses_a_port_out_of_range():
    # A subprocess with a timeout: before the fix the server started (and listened elsewhere).
    run = subprocess.run(
        [str(OTD_RISK), "serve", "--port", "99999"],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    said = " ".join(run.stderr.replace("│", " ").split())
    assert "Invalid value for '--port': 99999 is not in the range 1<=x<=65535" in said


def test_serve_refuses_a_data_folder_that_does_not_exist(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert f"--data {tmp_path / 'nowhere'}: no such folder" in result.stderr


def test_every_otd_risk_variable_the_code_reads_is_a_setting_or_declared():
    """A variable read outside Settings (a new server option, a test switch) must be declared
    in NOT_SETTINGS, or every command would refuse it."""
    root = Path(__file__).resolve().parents[2]
    sources = [
        p
        for p in [*root.rglob("*.py"), *(root / ".ci").glob("*")]
        if ".venv" not in p.parts and p.parent != Path(__file__).parent and p.is_file()
    ]
    named = set()
    for path in sources:
        named |= set(re.findall(r"OTD_RISK_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="ignore")))
    known = {env_name(f) for f in Settings.model_fields} | set(NOT_SETTINGS)
    assert named - known == set()
    assert {"OTD_RISK_TEST_POSTGRES_URL", "OTD_RISK_SERVE_MAX_BODY_MB"} <= named


def test_server_options_in_dotenv_are_settings(tmp_path, monkeypatch):
    """Issue 16: `OTD_RISK_SERVE_MAX_BODY_MB=5` in .env made every command fail (the server's
    options were read beside Settings, which refused them)."""
    from serving.app import ServeOptions

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "OTD_RISK_SERVE_MAX_BODY_MB=5\nOTD_RISK_SERVE_RELOAD_SECONDS=0\n"
    )
    get_settings.cache_clear()
    options = ServeOptions.from_settings(get_settings())
    assert options.max_body_bytes == 5 * 1024 * 1024
    assert options.reload_seconds == 0
    run = subprocess.run(
        [str(OTD_RISK), "keys", "list"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
