"""Command-line tasks: migrate, seed the demo, audit the ledger, run the dev stack."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from portal import db


def init_app(app: Flask) -> None:
    app.cli.add_command(migrate_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(audit_ledger_command)
    app.cli.add_command(dev_command)
    app.cli.add_command(demo_codes_command)
    from portal.scheduler import scheduler_command
    from portal.usage import simulate_usage_command

    app.cli.add_command(scheduler_command)
    app.cli.add_command(simulate_usage_command)


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from portal.migrate import upgrade

    upgrade(current_app.config["SQLALCHEMY_DATABASE_URI"])
    click.echo("Database is up to date.")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo data (safe to run again)."""
    from portal.demo import seed_demo

    seed_demo(db.session())
    click.echo("Demo data is in place. Sign in with any demo account and the password demo-pass.")
    click.echo(demo_two_factor_note())


def demo_two_factor_note() -> str:
    from portal.demo import DEMO_TOTP_SECRETS

    lines = [
        "Demo admins also need a two-factor code: add their TOTP key to an authenticator app",
        "or run `flask --app app demo-codes` for the current codes.",
    ]
    lines += [f"  {email}: {secret}" for email, secret in DEMO_TOTP_SECRETS.items()]
    return "\n".join(lines)


@click.command("demo-codes")
@with_appcontext
def demo_codes_command() -> None:
    """Print the current two-factor codes of the demo admins (their keys are public)."""
    import time

    import pyotp

    from portal.demo import DEMO_TOTP_SECRETS

    if current_app.config.get("ENV_NAME") == "production":
        click.echo("Not available in production.", err=True)
        sys.exit(1)
    left = 30 - int(time.time()) % 30
    for email, secret in DEMO_TOTP_SECRETS.items():
        click.echo(f"{email}: {pyotp.TOTP(secret).now()}  (valid {left} more seconds)")


@click.command("audit-ledger")
@with_appcontext
def audit_ledger_command() -> None:
    """Check every account: cached balance == sum of ledger entries. Exit 1 on a mismatch."""
    from portal.ledger import audit_balances

    mismatches = audit_balances(db.session())
    for account_id, cached, summed in mismatches:
        click.echo(f"MISMATCH account {account_id}: cached {cached} != entries {summed}", err=True)
    if mismatches:
        sys.exit(1)
    click.echo("Ledger audit passed: every cached balance equals the sum of its entries.")


@click.command("dev")
@click.option("--port", type=int, default=None, help="Port of the app (default: PORT or 5000).")
@with_appcontext
def dev_command(port: int | None) -> None:
    """Run localstripe, the app and its in-process scheduler; Ctrl-C stops all of it."""
    from portal.devserver import run_dev_stack

    run_dev_stack(current_app._get_current_object(), port or current_app.config["PORT"])
