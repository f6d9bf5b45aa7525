"""The served model: what it is, and reloading the champion on demand."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.deps import ADMIN, READER, ModelDep, StateDep
from serving.schemas import ErrorResponse, ModelInfo, ReloadOut

router = APIRouter(
    prefix="/v1/model",
    tags=["model"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)


@router.get(
    "",
    response_model=ModelInfo,
    summary="The served model version and its metrics",
    dependencies=READER,
    responses={503: {"model": ErrorResponse}},
)
def model_info(model: ModelDep) -> ModelInfo:
    rm = model.risk_model
    return ModelInfo(
        model_version=model.version,
        run_id=getattr(model.loaded, "run_id", None),
        trained_at=model.trained_at,
        metrics={k: float(v) for k, v in (getattr(model.loaded, "metrics", {}) or {}).items()},
        n_features=len(rm.feature_names),
        n_trees=int(rm.booster.num_trees()),
        features=list(rm.feature_names),
        loaded_at=model.loaded_at,
    )


@router.post(
    "/reload",
    response_model=ReloadOut,
    summary="Load the current champion now (admin)",
    dependencies=ADMIN,
    responses={503: {"model": ErrorResponse}},
)
def reload_model(state: StateDep, request: Request) -> ReloadOut:
    from serving.errors import ApiError
    from serving.state import ModelLoadError

    previous = None if state.model is None else state.model.version
    try:
        changed = state.refresh_model(retry_failed=True)
    except ModelLoadError as exc:
        raise ApiError(503, "model_load_failed", str(exc)) from None
    if state.model is None:
        raise ApiError(503, "model_not_loaded", state.last_error or "no champion to load")
    if changed:
        request.app.state.on_model_swap(state.model)
    return ReloadOut(model_version=state.model.version, previous_version=previous, changed=changed)
