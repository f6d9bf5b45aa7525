"""Prometheus metrics of one app (own registry, so several apps in one process do not clash).

With ``--workers N`` each worker process counts its own requests; scrape through one worker or
run one worker per port for exact totals.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


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
        self.run_orders = Gauge(
            "otd_risk_latest_run_orders", "Orders in the latest scoring run", registry=self.registry
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _count(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The route template, not the raw path: one series per route, not per order id.
        label = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, label, str(response.status_code)).inc()
        metrics.latency.labels(label).observe(time.perf_counter() - start)
        return response
