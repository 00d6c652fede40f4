"""The development stack behind `make run`: localstripe on loopback, the app, the scheduler."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

import click
from flask import Flask

from portal.config import LOCALSTRIPE_PORT

log = logging.getLogger(__name__)


def start_localstripe(port: int = LOCALSTRIPE_PORT) -> subprocess.Popen:
    """Start our loopback-only localstripe launcher and wait until it answers."""
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "portal.localstripe_server", "--port", str(port)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/js.stripe.com/v3/", timeout=1)  # noqa: S310
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("localstripe exited during start-up") from None
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("localstripe did not answer within 20 s")


def register_webhook(app: Flask, stripe_port: int, app_port: int) -> None:
    """Tell localstripe to deliver events to our webhook endpoint."""
    import json

    body = json.dumps(
        {
            "url": f"http://127.0.0.1:{app_port}/webhooks/stripe",
            "secret": app.config["STRIPE_WEBHOOK_SECRET"],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{stripe_port}/_config/webhooks/portal",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5)  # noqa: S310


# Test card numbers (Stripe's documented ones) for the demo customers: a primary card
# for each, and a secondary one for Alice so the fallback can be seen.
DEMO_CARDS = {
    "100001": ["4242424242424242", "5555555555554444"],  # Alice
    "100002": ["4242424242424242"],  # Bob
}


def seed_stripe_demo(app: Flask) -> None:
    """Give the demo customers Stripe customers with working cards (safe to run again).

    localstripe starts empty each time, so Stripe ids left from an earlier run are
    forgotten first and created again.
    """
    from sqlalchemy import select

    from portal import db
    from portal.models import Account
    from portal.payments import gateway, service

    with app.app_context():
        session = db.session()
        for account in session.scalars(
            select(Account).where(Account.stripe_customer_id.is_not(None))
        ):
            if not gateway.customer_exists(account.stripe_customer_id):
                _forget_stripe_customer(session, account)
        for number, card_numbers in DEMO_CARDS.items():
            account = session.scalar(select(Account).where(Account.number == number))
            if account is None or service.list_cards(session, account=account):
                continue
            customer_id = gateway.ensure_customer(session, account)
            for card_number in card_numbers:
                info = gateway.create_test_card(customer_id, card_number)
                service.link_card(session, account=account, info=info)
        _enable_demo_auto_recharge(session)


def _enable_demo_auto_recharge(session) -> None:
    """Alice tops up £20 automatically at £5, so `flask simulate-usage` shows a refill."""
    from sqlalchemy import select

    from portal.models import Account, AutoRechargeSetting
    from portal.payments.recharge_settings import save_auto_recharge_settings

    alice = session.scalar(select(Account).where(Account.number == "100001"))
    if alice is None or session.get(AutoRechargeSetting, alice.id) is not None:
        return  # keep whatever the person chose on an earlier run
    save_auto_recharge_settings(
        session, account=alice, enabled=True, threshold_minor=500, amount_minor=2000
    )


def _forget_stripe_customer(session, account) -> None:
    from portal.payments import service

    for card in service.list_cards(session, account=account):
        service.remove_card(session, account=account, card=card)
    account.stripe_customer_id = None
    session.commit()
    log.info("forgot the stale Stripe customer of account %s", account.number)


def run_dev_stack(app: Flask, port: int) -> None:
    stripe_port = int(os.environ.get("LOCALSTRIPE_PORT", LOCALSTRIPE_PORT))
    stripe_proc = start_localstripe(stripe_port)
    # Stopped with SIGTERM, still run the `finally` below so localstripe goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        register_webhook(app, stripe_port, port)
        seed_stripe_demo(app)
        _start_scheduler(app)
        click.echo(
            f" * Portal on http://127.0.0.1:{port}  (localstripe on 127.0.0.1:{stripe_port})"
        )
        from portal.cli import demo_two_factor_note

        click.echo(demo_two_factor_note())
        # app.run() is a no-op inside the `flask` CLI; serve with werkzeug directly.
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        os.killpg(stripe_proc.pid, signal.SIGTERM)
        stripe_proc.wait(timeout=10)


def _start_scheduler(app: Flask) -> None:
    try:
        from portal.scheduler import start_background_scheduler
    except ImportError:  # the scheduler module arrives with the background-jobs work
        log.info("no scheduler module yet")
        return
    start_background_scheduler(app)
