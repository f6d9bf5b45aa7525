"""The otd-risk API: ``create_app(settings) -> FastAPI``.

The app is given its settings (any ``serving.config.ServingConfig``; the CLI passes
``otd_risk.settings.Settings``) and keeps them in ``app.state.settings``: nothing in serving reads
the environment. The zero-argument factory of ``uvicorn --factory`` is ``otd_risk.asgi``'s.

The champion model is loaded once in ``lifespan`` into ``app.state.serving`` and reached through
one dependency (``serving.deps.ModelDep``). A background task checks every
``ServeOptions.reload_seconds`` whether the champion alias points at a new version, the data
folder's files were written again (a new export), or a newer scoring run was recorded, and swaps
it in without a restart; requests in flight keep the model and data they started with.
CPU-bound routes are plain ``def`` (they run in the thread pool).

Errors all have one shape, ``{"error": {"code", "message", "details"?}}`` (see
``serving.errors``). Keys are checked per request; ``/healthz``, ``/readyz`` and ``/metrics``
are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass

from fastapi import FastAPI

from data.urls import install_log_redaction, redact_url
from serving.config import ServingConfig
from serving.errors import install_error_handlers
from serving.headers import SecurityHeaders
from serving.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from serving.metrics import Metrics, install_metrics
from serving.routers import (
    board,
    docs,
    health,
    model,
    monitoring,
    orders,
    page,
    risk,
    webhooks,
    whatif,
)
from serving.state import ServingState
from serving.store import open_store
from serving.webhooks import start_webhook_worker

log = logging.getLogger("otd_risk.serving")


TAGS = [
    {"name": "risk", "description": "Score and explain orders on demand (workflow/ERP calls)."},
    {
        "name": "orders",
        "description": "The latest scoring run's ranked list; one order's full explanation.",
    },
    {"name": "model", "description": "The served model; reload the champion (admin)."},
    {"name": "monitoring", "description": "Drift and realised accuracy (`otd-risk monitor`)."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics (no key)."},
]


@dataclass(frozen=True)
class ServeOptions:
    """Knobs of a server process that are not project settings."""

    reload_seconds: float = 30.0
    """How often to look for a new champion version or a newer scoring run (0: never)."""
    load_data: bool = True
    """Load ``settings.data`` at start so that orders can be looked up by id."""
    startup_wait_seconds: float = 20.0
    """How long startup waits for the first load of the champion. A tracking store that is
    down makes MLflow retry for minutes: the server then starts anyway, answers /healthz, says
    not ready on /readyz, and the load (then the reload loop) goes on in the background."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Larger request bodies get 413 before they are read whole (``serving.limits``)."""

    @classmethod
    def from_settings(cls, settings: ServingConfig) -> ServeOptions:
        """The options a server process takes from the project settings (``serve_*``)."""
        return cls(
            reload_seconds=settings.serve_reload_seconds,
            max_body_bytes=int(settings.serve_max_body_mb * 1024 * 1024),
        )


def create_app(settings: ServingConfig, options: ServeOptions | None = None) -> FastAPI:
    """The API over ``settings``."""
    options = options or ServeOptions()
    metrics = Metrics()
    install_log_redaction()  # the tracking URI may carry a password: never in the log

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state = ServingState(settings, app.state.store)
        state.expects_data = options.load_data and bool(settings.data)
        app.state.serving = state
        state.answers.on_made = lambda answers: metrics.answered_orders.set(answers.n)
        await _start_bounded(state, options, app)
        webhook_worker = start_webhook_worker(app, settings)
        watcher = None
        if options.reload_seconds > 0:
            watcher = asyncio.create_task(_watch(state, options.reload_seconds, app))
        try:
            yield
        finally:
            await asyncio.to_thread(webhook_worker.stop)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="otd-risk",
        summary="Which open customer orders will miss their due date, and which stage drives it.",
        description="Send an API key as `Authorization: Bearer <key>` (create one with "
        '`otd-risk keys create --role reader|admin`). Errors: `{"error": {"code", '
        '"message", "details"}}`; validation errors (422) name each field. Stage '
        "contributions are in log-odds of lateness.",
        version="1",
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Served by serving.routers.docs from the installed package (FastAPI's load a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.settings = settings
    # The serving store, opened (and upgraded) once at start-up: keys, runs and webhooks are
    # read through it, before the model is loaded too.
    app.state.store = open_store(settings.serving_store_url)

    def on_model_swap(snapshot) -> None:
        metrics.model_reloads.inc()
        _set_version_gauge(metrics, snapshot.version)
        _freeze_heap()

    app.state.on_model_swap = on_model_swap
    install_error_handlers(app)
    install_metrics(app, metrics)
    app.add_middleware(BodySizeLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    for module in (health, risk, orders, whatif, model, monitoring, webhooks, page, board, docs):
        app.include_router(module.router)
    return app


async def _start_bounded(state: ServingState, options: ServeOptions, app: FastAPI) -> None:
    """Run ``_start`` in a daemon thread and wait for it at most
    ``options.startup_wait_seconds`` (a daemon thread: shutting down never waits for a load
    stuck in MLflow's retries)."""
    done = threading.Event()

    def run() -> None:
        try:
            _start(state, options, app)
        finally:
            done.set()

    threading.Thread(target=run, name="otd-risk-first-load", daemon=True).start()
    deadline = time.monotonic() + options.startup_wait_seconds
    while not done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not done.is_set():
        state.last_error = state.last_error or (
            "still loading the champion: the tracking store "
            f"({redact_url(state.settings.tracking_uri)}) is slow or unreachable"
        )
        log.warning("%s; serving /healthz and /readyz (503) meanwhile", state.last_error)


def _start(state: ServingState, options: ServeOptions, app: FastAPI) -> None:
    try:
        if state.refresh_model():
            app.state.on_model_swap(state.model)
    except Exception as exc:  # noqa: BLE001 - the server starts not-ready and keeps trying
        state.last_error = f"cannot load the champion: {type(exc).__name__}: {exc}"
        log.exception("loading the champion failed")
    if options.load_data and state.model is not None:
        state.load_data()
        if state.data is not None:
            state.answers.start(state.model, state.data)
    _refresh_run(state, app)
    gc.collect()  # once, at start: no garbage of the loading is frozen with what it built
    _freeze_heap()


def _refresh_run(state: ServingState, app: FastAPI) -> None:
    try:
        if state.refresh_run() and state.run is not None:
            app.state.metrics.run_orders.set(state.run.info.n_scored)
            _freeze_heap()
    except Exception:  # noqa: BLE001 - keep serving the previous run
        log.exception("loading the latest scoring run failed")


async def _watch(state: ServingState, every: float, app: FastAPI) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            had_data = state.data is not None
            changed = await asyncio.to_thread(state.refresh_model)
            if changed:
                app.state.on_model_swap(state.model)
                if not had_data:
                    await asyncio.to_thread(state.load_data)
                    _freeze_heap()
        except Exception:  # noqa: BLE001 - a failed check must not stop the server
            log.exception("checking for a new champion failed; still serving the old one")
        try:
            if await asyncio.to_thread(state.refresh_data):
                app.state.metrics.data_reloads.inc()
                if state.model is not None and state.data is not None:
                    state.answers.start(state.model, state.data)
                _freeze_heap()
        except Exception:  # noqa: BLE001 - as above: the loaded dataset keeps serving
            log.exception("checking the dataset for a new export failed; still serving the old")
        await asyncio.to_thread(_refresh_run, state, app)


def _freeze_heap() -> None:
    """Move what is loaded now out of the cyclic garbage collector's sight (``gc.freeze``).

    The served snapshots (dataset, open orders' features, the ranked run with its reasons) are
    ~600,000 tracked objects that live as long as they are served. Each full collection walked
    them all, ~250 ms with the GIL held: a 1,000-order batch set one off about every 30 requests
    and every request in flight waited for it. Frozen, a full collection takes ~3 ms. Called
    after every load or swap; a swapped-out snapshot is still freed by reference counting
    (measured: a few dozen objects in cycles stay behind per reload)."""
    gc.freeze()


def _set_version_gauge(metrics: Metrics, version: str) -> None:
    with contextlib.suppress(ValueError):
        metrics.model_version.set(float(version))
