"""`otd-risk train` on an export with many extra order columns prints no library warning.

A real ERP export carries a dozen or more master-data columns beside the contract's; each becomes
history features (late rates by value), and the training set grows wide. Seen on SCMS (16 extra
columns): pandas' "DataFrame is highly fragmented" PerformanceWarning from the forecast's
examples, twice per train."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

OTD_RISK = Path(sys.executable).with_name("otd-risk")
EXTRA = 20


def test_train_on_a_wide_export_is_quiet(small_world_dir: Path, tmp_path: Path):
    data = tmp_path / "export"
    shutil.copytree(small_world_dir, data)
    orders = pd.read_csv(data / "orders.csv", dtype=str, keep_default_na=False)
    codes = pd.factorize(orders["customer_id"])[0]
    for k in range(EXTRA):
        orders[f"master_{k:02d}"] = [f"v{(c * (k + 3)) % (k + 2)}" for c in codes]
    orders.to_csv(data / "orders.csv", index=False)
    names = [f"master_{k:02d}" for k in range(EXTRA)]
    env = {
        **os.environ,
        "OTD_RISK_HOME": str(tmp_path / "home"),
        "OTD_RISK_EXTRA_ORDER_FEATURES": json.dumps(names),
    }
    env.pop("PYTHONWARNINGS", None)
    run = subprocess.run(
        [str(OTD_RISK), "train", "--data", str(data), "--force"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "master_" in out  # the columns were used (train names the pairs it adds)
    for word in ("Warning", "warning:", "WARNING"):
        assert word not in out, out[-3000:]
    # The forecast is reported beside the risk: against both baselines, with intervals.
    flat = " ".join(out.split())
    assert "Delivery forecast, validation window" in flat
    assert "forecast MAE saved over on plan (0 days late):" in flat
    assert "forecast MAE saved over typical stage durations:" in flat
    assert "Delivery forecast by horizon" in flat
