"""What the Spark tests share besides fixtures: the master and a CLI run's environment."""

from __future__ import annotations

from pathlib import Path

MASTER = "local[2]"
"""Two cores, as CI's machine has: one session for every Spark test."""


def spark_cli_env(home: Path) -> dict[str, str]:
    """The environment of a CLI run over ``home``, with its own MLflow store named explicitly
    (another test's ``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI)."""
    return {
        "OTD_RISK_HOME": str(home),
        "OTD_RISK_MLFLOW_TRACKING_URI": f"sqlite:///{home.resolve() / 'mlflow.db'}",
        "OTD_RISK_DATA": "",
    }
