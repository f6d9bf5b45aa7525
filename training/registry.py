"""MLflow plumbing: where runs go, model versions, the promotion gate and the champion.

Any tracking URI works (``settings.tracking_uri``: the embedded SQLite store by default, or an
``mlflow server``). With a database store and no server, MLflow would put artifacts in ``./mlruns``
of whatever directory the command runs in, so the experiment is created with its artifact
location under ``settings.artifact_root``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.contract import OPTIONAL_TABLES
from data.urls import redact_url
from training.config import RegistryConfig
from training.evaluate import LOWER_IS_BETTER, better, classification_metrics
from training.model import RiskModel

log = logging.getLogger("otd_risk.training")


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version loaded for scoring."""

    risk_model: RiskModel
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    """The metrics logged on the version's training run."""


@dataclass(frozen=True)
class GateDecision:
    """The promotion gate's verdict for a new version."""

    promoted: bool
    text: str
    metric: str
    new_score: float
    champion_score: float | None
    champion_version: str | None
    baseline_scores: dict[str, float] = field(default_factory=dict)
    """Each baseline's score on the same window and metric."""
    beaten_by: list[str] = field(default_factory=list)
    """Baselines that scored at least as well as the new version (it must beat them all)."""


def use_tracking(settings: RegistryConfig, experiment: str) -> str:
    """Point MLflow at ``settings.tracking_uri`` and make ``experiment`` current (created with
    its artifacts under the project home when the store is a local database or folder);
    returns the experiment id."""
    uri = settings.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if _is_local_store(uri):
        settings.ensure_home()
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if _is_local_store(uri):
            location = (settings.artifact_root / _slug(experiment)).as_uri()
        try:
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by a concurrent run
            raced = mlflow.get_experiment_by_name(experiment)
            if raced is None:  # no race: the store refused to create it, say why
                raise
            experiment_id = raced.experiment_id
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def register_version(model_uri: str, settings: RegistryConfig, run_id: str) -> str:
    """Register the logged model as a new version of ``settings.model_name``."""
    version = mlflow.register_model(model_uri, settings.model_name, tags={"run_id": run_id})
    return str(version.version)


def champion_version(settings: RegistryConfig) -> Any | None:
    """The registry's version behind the champion alias, or None when there is none yet."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        return client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except MlflowException:
        return None


def load_version(settings: RegistryConfig, version: str) -> RiskModel:
    """The RiskModel of one registered version."""
    uri = f"models:/{settings.model_name}/{version}"
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().risk_model


def promotion_gate(
    settings: RegistryConfig,
    new_version: str,
    new_prob: np.ndarray,
    y_valid: np.ndarray,
    valid: pd.DataFrame,
    *,
    baselines: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    features_for: Callable[[RiskModel], pd.DataFrame] | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    missing_tables: Sequence[str] = OPTIONAL_TABLES,
) -> GateDecision:
    """Decide whether ``new_version`` becomes champion: on ``settings.promotion_metric`` over
    the SAME validation examples it must beat every baseline (``baselines``: name -> score;
    the first version too) and the current champion (ties keep the incumbent, and a tie with a
    baseline is no win). ``features_for(model)`` builds the validation examples' features for
    the champion (its own extra columns and history pairs; default: ``valid`` as it is). A
    champion that cannot score them loses, and the reason is given. ``force`` promotes
    regardless and says so. Sets the alias when promoted; otherwise the version stays
    registered, unpromoted, and the text says which baseline won, by how much, and what to
    try (``missing_tables``: the optional tables the dataset lacks, the only ones to suggest)."""
    metric = settings.promotion_metric
    labels = dict(labels or {})
    new_score = classification_metrics(y_valid, new_prob)[metric]
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    baseline_scores = {k: float(v) for k, v in (baselines or {}).items()}
    beaten_by = [
        k
        for k, v in baseline_scores.items()
        if not math.isnan(v) and not better(new_score, v, metric)
    ]
    current = champion_version(settings)
    old_score: float | None = None
    old_version = None if current is None else str(current.version)
    # The champion is scored whatever the baselines did: the run records both comparisons.
    if current is None:
        promoted, reason = True, "no champion yet"
    else:
        try:
            champion = load_version(settings, str(current.version))
            champion_valid = valid if features_for is None else features_for(champion)
            old_score = classification_metrics(y_valid, champion.predict_risk(champion_valid))[
                metric
            ]
        except Exception as exc:  # noqa: BLE001 - any failure to score means it cannot compete
            promoted = True
            reason = (
                f"champion v{old_version} cannot score this validation window "
                f"({type(exc).__name__}: {exc}); it loses"
            )
        else:
            promoted = better(new_score, old_score, metric)
            verb = "beats" if promoted else "does not beat"
            reason = (
                f"{metric} {new_score:.4f} {verb} champion v{old_version}'s "
                f"{old_score:.4f} ({direction} is better; ties keep the champion)"
            )
    if beaten_by:
        worst = max(
            beaten_by,
            key=lambda k: baseline_scores[k] if direction == "higher" else -baseline_scores[k],
        )
        margin = abs(baseline_scores[worst] - new_score)
        others = [labels.get(b, b) for b in beaten_by if b != worst]
        also = f"; also beaten by the {', '.join(others)}" if others else ""
        promoted = False
        reason = (
            f"{metric} {new_score:.4f} does not beat the {labels.get(worst, worst)}'s "
            f"{baseline_scores[worst]:.4f} ({margin:.4f} {direction} is better){also}: what "
            "this export holds is not enough for the model to earn its place. Try more "
            "history, "
            + (f"more tables ({', '.join(missing_tables)}), " if missing_tables else "")
            + "extra order columns as features (OTD_RISK_EXTRA_ORDER_FEATURES), or --force to "
            "promote anyway" + ("" if current is None else f" ({reason})")
        )
    if promoted and baseline_scores:
        reason += f"; beats every baseline on {metric}"
    if force and not promoted:
        promoted, reason = True, f"FORCED (--force) although {reason}"
    elif force:
        reason = f"{reason}; --force given"
    if promoted:
        MlflowClient(settings.tracking_uri, settings.tracking_uri).set_registered_model_alias(
            settings.model_name, settings.champion_alias, new_version
        )
        text = f"v{new_version} promoted to @{settings.champion_alias}: {reason}"
    else:
        text = f"v{new_version} registered but NOT promoted: {reason}"
    if log:
        log(text)
    return GateDecision(
        promoted,
        text,
        metric,
        float(new_score),
        None if old_score is None or math.isnan(old_score) else float(old_score),
        old_version,
        baseline_scores,
        beaten_by,
    )


def promote(settings: RegistryConfig, version: str) -> None:
    """Point the champion alias at ``version`` (what ``--force`` does after the gate)."""
    MlflowClient(settings.tracking_uri, settings.tracking_uri).set_registered_model_alias(
        settings.model_name, settings.champion_alias, version
    )


def load_champion(settings: RegistryConfig) -> LoadedModel:
    """The model behind ``models:/<model_name>@<champion_alias>``, its version, training run
    and that run's metrics. Raises LookupError when nothing is promoted yet."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    current = champion_version(settings)
    if current is None:
        raise LookupError(
            f"no model has the alias @{settings.champion_alias} of {settings.model_name!r} at "
            f"{redact_url(settings.tracking_uri)}; train one with `otd-risk train --data DIR` "
            "(or `otd-risk demo`)"
        )
    uri = f"models:/{settings.model_name}@{settings.champion_alias}"
    risk_model = _load_risk_model(uri)
    run_id = current.run_id or (current.tags or {}).get("run_id")
    metrics: dict[str, float] = {}
    if run_id:
        client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
        metrics = dict(client.get_run(run_id).data.metrics)
    return LoadedModel(risk_model, str(current.version), run_id, metrics)


def _load_risk_model(uri: str) -> RiskModel:
    """The RiskModel inside a registered pyfunc model. MLflow's own check of the model's pinned
    requirements reads the file list of every installed package (1.9 s of a profiled
    `otd-risk score` on a busy machine); the same check on the few packages the model pins
    costs milliseconds, and says the same thing."""
    from mlflow.artifacts import download_artifacts

    local = Path(download_artifacts(artifact_uri=uri))
    differ = requirement_mismatches(local / "requirements.txt")
    if differ:
        log.warning(
            "the model %s was saved with %s; this environment has %s. Install the versions it "
            "was saved with (pip install -c requirements.lock -e .) or retrain it here",
            uri,
            ", ".join(f"{name}=={want}" for name, want, _ in differ),
            ", ".join(f"{name} {have or 'not installed'}" for name, _, have in differ),
        )
    return (
        mlflow.pyfunc.load_model(str(local), suppress_warnings=True)
        .unwrap_python_model()
        .risk_model
    )


def requirement_mismatches(requirements: Path) -> list[tuple[str, str, str | None]]:
    """(package, pinned version, installed version or None) of each ``name==version`` line of
    a model's requirements.txt that the environment does not match."""
    from importlib.metadata import PackageNotFoundError, version

    out: list[tuple[str, str, str | None]] = []
    if not requirements.exists():
        return out
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name, sep, want = line.split("#")[0].strip().partition("==")
        if not sep or not name:
            continue
        try:
            have: str | None = version(name)
        except PackageNotFoundError:
            have = None
        if have != want.strip():
            out.append((name, want.strip(), have))
    return out


def _is_local_store(uri: str) -> bool:
    return not re.match(r"^(https?|databricks|mlflow-artifacts)", uri)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"
