"""The API as ``uvicorn --factory otd_risk.asgi:app_from_env`` builds it, in each worker process.

Here, in the top package, because it composes the settings (read from the environment, which
``otd-risk serve`` sets for its workers) with serving's app; serving itself never reads them.
"""

from __future__ import annotations

from fastapi import FastAPI

from otd_risk.settings import get_settings
from serving.app import ServeOptions, create_app


def app_from_env() -> FastAPI:
    """A new app over the process settings, with the server options they hold (``serve_*``)."""
    settings = get_settings()
    return create_app(settings, ServeOptions.from_settings(settings))
