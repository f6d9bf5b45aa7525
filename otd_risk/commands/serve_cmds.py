"""Serving commands: ``score`` (a scoring run), ``serve`` (the API) and ``keys`` (API keys)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.table import Table

from otd_risk.commands.common import (
    DataOption,
    EngineOption,
    MasterOption,
    UserError,
    batch_command,
    console,
    iso_time,
    load_configured_dataset,
    settings_store,
    spark_engine,
    user_errors,
)
from serving.i18n import LANGS

keys_app = typer.Typer(help="API keys: create (shown once), revoke, list.", no_args_is_help=True)


def score(
    out: Annotated[Path, typer.Option("--out", help="File to write the ranked list to.")],
    data: DataOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Score the orders open at this time (default: the dataset's snapshot "
            "time, never the clock).",
            callback=iso_time,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv, parquet, xlsx or json (default: from the file's extension)."
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            help="Language of the reasons (default: the OTD_RISK_DEFAULT_LANG setting).",
            click_type=click.Choice(LANGS),
        ),
    ] = None,
    engine: EngineOption = "local",
    master: MasterOption = None,
) -> None:
    """Score every open order with the champion model, write the ranked list and record the run
    (the API then serves it). With --engine spark, the orders are featured, scored and explained
    on Spark; the file is written and the run recorded here."""
    from data.dataset import parse_as_of
    from otd_risk.settings import get_settings
    from serving.scoring import RunStoreError, output_format, run_scoring

    settings = get_settings()
    with user_errors():
        source = data or settings.data
        if not source:
            raise UserError("no dataset: pass --data DIR|URL or set OTD_RISK_DATA")
        try:
            output_format(out, fmt)  # before any work: a wrong --out costs nothing
            # The dataset is read in the settings' zone: a time without an offset is too.
            t = parse_as_of(as_of, settings.timezone)
            spark = spark_engine(engine, master)
            options: dict = {}
            if spark is not None:
                from serving.spark_scoring import spark_scorer

                options["score"] = spark_scorer(spark)
            # The champion loads (MLflow, unpickling) and, on the local path, its explainer is
            # made (numba, the TreeSHAP tables) while the tables are read and checked (Parquet
            # and CSV readers release the GIL): measured 0.5-0.9 s less than one after the other.
            with ThreadPoolExecutor(max_workers=1) as pool:
                champion = pool.submit(_champion_and_explainer, settings, spark is None)
                dataset = load_configured_dataset(source, settings, spark=spark)
                model, explainer = champion.result()
            if explainer is not None:
                options["explainer"] = explainer
            result = run_scoring(
                dataset,
                model,
                settings_store(settings),
                out,
                as_of=t,
                fmt=fmt,
                lang=lang or settings.default_lang,
                keep_runs_days=settings.keep_runs_days,
                owners=settings.stage_owners,
                **options,
            )
        except (LookupError, ValueError, RunStoreError) as exc:
            raise UserError(str(exc)) from exc
    run = result.run
    console.print(
        f"Scored [bold]{run.n_scored:,}[/] open orders as of {run.as_of:%Y-%m-%d %H:%M} UTC "
        f"with model version [bold]{run.model_version}[/]; wrote {result.out} "
        f"(run {run.run_id[:12]})"
    )
    if run.n_scored:
        top = Table(title="Most at risk")
        for col in ("rank", "order_id", "risk", "top_stage", "plant_id", "due_date"):
            top.add_column(col)
        for row in result.scores.head(5).itertuples():
            top.add_row(
                str(row.rank),
                str(row.order_id),
                f"{row.risk:.2f}",
                str(row.top_stage),
                str(row.plant_id),
                f"{row.due_date:%Y-%m-%d}",
            )
        console.print(top)


def _champion_and_explainer(settings, explain: bool):
    """The champion, and its explainer when ``explain`` (the local path explains here)."""
    from training.registry import load_champion

    model = load_champion(settings)
    if not explain:
        return model, None
    from serving.explain import Explainer

    return model, Explainer(model.risk_model)


def serve(
    data: DataOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    reload_seconds: Annotated[
        float,
        typer.Option(
            help="How often to look for a new champion, scoring run or export in --data's "
            "folder (0: never)."
        ),
    ] = 30.0,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log a line per request (uvicorn's access log). Errors and start-up are "
            "logged either way."
        ),
    ] = True,
) -> None:
    """Serve the API and the planner's page (uvicorn): loads the champion once, picks up a new
    one without a restart. The API looks orders up by order_id in the dataset (--data); without
    one, orders are scored only by their features."""
    import os

    import uvicorn

    from otd_risk.settings import env_name, get_settings

    with user_errors():
        if data is not None:
            if not _is_url(data) and not Path(data).is_dir():
                raise UserError(
                    f"--data {data}: no such folder; pass the dataset folder (for the demo's, "
                    "the one `otd-risk demo` printed) or a SQL URL"
                )
            # Through the environment: every worker process reads its settings from it.
            os.environ["OTD_RISK_DATA"] = str(Path(data).resolve()) if not _is_url(data) else data
            get_settings.cache_clear()
            get_settings()
        # Through the environment too, for the same reason.
        os.environ[env_name("serve_reload_seconds")] = str(reload_seconds)
        get_settings.cache_clear()
        get_settings()
        _store()  # a store that cannot be opened is said here, not in a worker's traceback
        # Through an import string and a factory so that every worker builds its own app.
        uvicorn.run(
            "otd_risk.asgi:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,
            # uvloop's event loop and httptools' parser (pinned in pyproject.toml); uvicorn's
            # "auto" would fall back silently to asyncio's loop and h11 without them.
            loop="uvloop",
            http="httptools",
        )


def _store():
    """The serving store the settings name (opened, and upgraded when needed)."""
    from otd_risk.settings import get_settings

    return settings_store(get_settings())


def _is_url(source: str) -> bool:
    return "://" in source


def keys_create(
    role: Annotated[
        str,
        typer.Option(
            help="reader (scores), planner (also acknowledges orders) or admin (also reload, "
            "webhooks)."
        ),
    ],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "",
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", help="Print only the key (for scripts: OTD_RISK_KEY=$(otd-risk keys ...))."
        ),
    ] = False,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from serving.keys import create_key

    with user_errors():
        try:
            created = create_key(_store(), role, name)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    if not quiet:
        console.print(
            f"Created key [bold]{created.info.key_id}[/] (role {created.info.role}). "
            "Copy it now, it will not be shown again:"
        )
    console.print(created.key, highlight=False, soft_wrap=True)


def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke an API key: it stops working at once."""
    from serving.keys import revoke_key

    with user_errors():
        try:
            info = revoke_key(_store(), key_id)
        except KeyError as exc:
            raise UserError(exc.args[0]) from exc
    console.print(f"Revoked key {info.key_id} ({info.role}{', ' + info.name if info.name else ''})")


def keys_list() -> None:
    """List the API keys (ids, roles, names; never the keys)."""
    from serving.keys import list_keys

    table = Table(title="API keys")
    for col in ("id", "role", "name", "created", "status"):
        table.add_column(col)
    with user_errors():
        keys = list_keys(_store())
    for k in keys:
        status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(k.key_id, k.role, k.name, f"{k.created_at:%Y-%m-%d %H:%M}", status)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the serving commands to the app."""
    app.command()(batch_command(score))
    app.command()(serve)
    keys_app.command("create")(keys_create)
    keys_app.command("revoke")(keys_revoke)
    keys_app.command("list")(keys_list)
    app.add_typer(keys_app, name="keys")
