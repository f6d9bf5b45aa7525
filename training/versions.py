"""The registry at a glance: every version of the model with its validation figures and aliases,
for ``otd-risk retrain``'s "what changed" and the data scientists' notebook."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

from training.config import RegistryConfig

HEADLINE = ("pr_auc", "roc_auc", "brier", "ece", "precision_top5pct")


def model_versions(settings: RegistryConfig) -> pd.DataFrame:
    """One row per registered version (newest last): version, aliases, created time, run id,
    cutoff and the headline validation metrics logged on its training run."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    rows = []
    for mv in client.search_model_versions(f"name='{settings.model_name}'"):
        row = {
            "version": int(mv.version),
            "aliases": ",".join(sorted(mv.aliases or [])),
            "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC"),
            "run_id": mv.run_id,
        }
        if mv.run_id:
            run = client.get_run(mv.run_id)
            row["cutoff"] = run.data.params.get("cutoff")
            row.update({k: run.data.metrics.get(k) for k in HEADLINE})
            row["gate_decision"] = run.data.tags.get("gate.decision")
        rows.append(row)
    columns = ["version", "aliases", "created", "run_id", "cutoff", *HEADLINE, "gate_decision"]
    return pd.DataFrame(rows, columns=columns).sort_values("version").reset_index(drop=True)
