"""APScheduler wiring: in-process for `make run`, its own process (`flask scheduler`) in production.

Several schedulers may run at once (gunicorn workers, hosts): each run takes the job's
database lease first (portal.jobs.run_job), and every job is idempotent on its own.
"""

from __future__ import annotations

import logging

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask, current_app
from flask.cli import with_appcontext

from portal.jobs import JOBS, run_job

log = logging.getLogger(__name__)

_app: Flask | None = None


def run_scheduled_job(name: str) -> None:
    """What APScheduler calls (module level, so any job store can reference it)."""
    if _app is None:
        raise RuntimeError("the scheduler was not configured with an app")
    result = run_job(name, app=_app)
    if result:
        log.info("job %s: %s item(s)", name, result)


def configure(scheduler: BaseScheduler, app: Flask) -> BaseScheduler:
    """Add every job: interval trigger, coalesced, one instance at a time, UTC."""
    global _app
    _app = app
    for name, (_function, seconds) in JOBS.items():
        scheduler.add_job(
            run_scheduled_job,
            "interval",
            seconds=seconds,
            args=[name],
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=seconds,
            replace_existing=True,
        )
    return scheduler


def start_background_scheduler(app: Flask) -> BackgroundScheduler:
    """Start the in-process scheduler (the demo / `make run`)."""
    scheduler = configure(BackgroundScheduler(timezone="UTC"), app)
    scheduler.start()
    log.info("background scheduler started with %d jobs", len(JOBS))
    return scheduler


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every job once now and exit.")
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Run the job scheduler in the foreground (production: its own process)."""
    app = current_app._get_current_object()
    if once:
        for name in JOBS:
            click.echo(f"{name}: {run_job(name, app=app)}")
        return
    scheduler = configure(BlockingScheduler(timezone="UTC"), app)
    click.echo(f"Scheduler running {len(JOBS)} jobs; Ctrl-C stops it.")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
