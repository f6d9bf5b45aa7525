"""A served world for the page tests: a small simulated dataset, a trained champion, a recorded
scoring run and a reader key under one project home, then a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import uvicorn

from otd_risk.settings import Settings
from serving.store import home_store


@dataclass
class ServedWorld:
    settings: Settings
    key: str
    admin_key: str
    scores: pd.DataFrame
    url: str = ""


def build_world(home: Path, n_orders: int = 1500, seed: int = 5) -> ServedWorld:
    from data.load import load_dataset
    from data.simulate import simulate, write_world
    from serving.columns import REASON_LANGS
    from serving.keys import create_key
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    settings = Settings(home=home)
    world_dir = write_world(simulate(n_orders, seed=seed), home / "world")
    dataset = load_dataset(world_dir, tz=settings.timezone)
    train_model(dataset, settings=settings)
    model = load_champion(settings)
    as_of = dataset.snapshot_time()
    # Reasons in both languages, as `otd-risk score` records them: the page switches language.
    scores = score_open_orders(dataset, as_of, model, reason_langs=REASON_LANGS)
    record_scoring_run(
        open_store(settings.serving_store_url), scores, model=model, as_of=as_of, dataset=dataset
    )
    reader = create_key(home_store(settings.ensure_home()), "reader", name="page test").key
    admin = create_key(home_store(settings.ensure_home()), "admin", name="page test").key
    return ServedWorld(settings=settings, key=reader, admin_key=admin, scores=scores)


class Server:
    """``create_app`` under uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, settings: Settings, *, load_data: bool = False) -> None:
        from serving.app import ServeOptions, create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = create_app(settings, ServeOptions(reload_seconds=0, load_data=load_data))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready in 30 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
