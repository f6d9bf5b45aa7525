"""`otd-risk score` options a person gets wrong (issue 15, item 13), on a trained home: an
--out folder that does not exist was created; --lang fr exited 0 and wrote English."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from otd_risk.cli import app
from serving.runs import latest_run
from serving.store import home_store


def test_score_into_a_missing_folder_is_refused_and_creates_nothing(served, cli_env, tmp_path):
    before = latest_run(home_store(cli_env)).run_id
    out = tmp_path / "nonexistent-dir" / "x.csv"
    result = CliRunner().invoke(app, ["score", "--data", served.settings.data, "--out", str(out)])
    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert f"the folder {out.parent} does not exist; create it first" in said
    assert not out.parent.exists()
    assert latest_run(home_store(cli_env)).run_id == before  # no run recorded either


@pytest.mark.parametrize(("lang", "cjk"), [("zh", True), ("en", False)])
def test_score_writes_reasons_in_the_language_asked(served, cli_env, tmp_path, lang, cjk):
    out = tmp_path / "ranked.csv"
    args = ["score", "--data", served.settings.data, "--out", str(out), "--lang", lang]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    reasons = pd.read_csv(out, encoding="utf-8-sig")["reasons"].dropna()
    has_cjk = reasons.map(lambda r: any("\u4e00" <= ch <= "\u9fff" for ch in r))
    assert len(reasons) and bool(has_cjk.all() if cjk else not has_cjk.any())
