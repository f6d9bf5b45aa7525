"""Prometheus metrics of one app (own registry, so several apps in one process do not clash).

With ``--workers N`` each worker process counts its own requests; scrape through one worker or
run one worker per port for exact totals.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "otd_risk_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "otd_risk_http_request_seconds",
            "Request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.orders_scored = Counter(
            "otd_risk_orders_scored_total",
            "Orders scored and explained by the API",
            registry=self.registry,
        )
        self.model_version = Gauge(
            "otd_risk_model_version", "Served model version (number)", registry=self.registry
        )
        self.model_reloads = Counter(
            "otd_risk_model_reloads_total",
            "Champion versions swapped in without a restart",
            registry=self.registry,
        )
        self.data_reloads = Counter(
            "otd_risk_data_reloads_total",
            "New exports of the dataset folder loaded without a restart",
            registry=self.registry,
        )
        self.run_orders = Gauge(
            "otd_risk_latest_run_orders", "Orders in the latest scoring run", registry=self.registry
        )
        self.answered_orders = Gauge(
            "otd_risk_answered_open_orders",
            "Open orders answered by id from the batch made for the served model and snapshot "
            "(serving.answers; 0 until it is made)",
            registry=self.registry,
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(RequestMetrics, metrics=metrics)


class RequestMetrics:
    """Counts requests and times them by route template and status: a plain ASGI middleware
    (Starlette's ``BaseHTTPMiddleware``, behind ``@app.middleware``, runs the app in a task
    group with memory streams, ~0.1 ms a request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_note)
        if status is None:  # no response (the client went away)
            return
        # The route template, not the raw path: one series per route, not per order id. The
        # router records the matched route in this very scope.
        label = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.requests.labels(scope["method"], label, str(status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - start)
