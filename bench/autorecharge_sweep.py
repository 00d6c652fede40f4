"""Target 7: the auto-recharge sweep costs what its work costs, not what the table holds.

Two cached databases: 10,000 and 1,000,000 accounts (100,000 in quick mode), every account
with auto-recharge enabled, 100 of them below the threshold with a card in localstripe.
The sweep job (portal.jobs.run_job, lease included) charges the 100 through Stripe in both.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress

from sqlalchemy import delete, func, select, text, update

from bench.common import Report, free_port
from bench.data import bench_app, database_url, ensure_reseller, ensure_schema, sequence, vacuum
from portal import db as portal_db
from portal.models import (
    Account,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    LedgerEntry,
    Payment,
    PaymentCard,
    PaymentStatus,
)

LOW = 100  # accounts below the threshold in both databases
QUICK_LOW = 20  # quick mode: fewer Stripe round trips (each recharge is ~6 commits + 1 call)
SMALL = 10_000
ROUNDS = 2
THRESHOLD_MINOR, AMOUNT_MINOR, FUNDED_MINOR = 500, 1_000, 10_000


def run(kind: str, *, quick: bool) -> Report:
    big = 100_000 if quick else 1_000_000
    low = QUICK_LOW if quick else LOW
    report = Report(
        f"Auto-recharge sweep: {big:,} vs {SMALL:,} accounts, {low} below threshold", kind
    )
    timings: dict[int, list[float]] = {SMALL: [], big: []}
    # Rounds in alternating order, best of each, and an empty localstripe for every sweep
    # (it keeps every object in memory): neither a checkpoint of an earlier benchmark nor
    # the previous sweep's Stripe objects decide the ratio.
    for round_ in range(ROUNDS):
        for size in (SMALL, big) if round_ % 2 == 0 else (big, SMALL):
            with localstripe() as stripe_url:
                elapsed, made, _setup = _measure(kind, size, stripe_url, low)
            if made:
                report.figure(f"{size:,} accounts generated set-based in {made:.1f} s (cached)")
            timings[size].append(elapsed)
    for size in (SMALL, big):
        best = min(timings[size])
        report.figure(
            f"{size:,} accounts: sweep charged {low} cards in {best:.2f} s, best of {ROUNDS} "
            f"({low / best:.0f} recharges/s; Stripe customers and cards set up beforehand)"
        )
    ratio = min(timings[big]) / min(timings[SMALL])
    report.target(f"sweep time {big:,} / {SMALL:,} accounts", ratio, 1.5, at_least=False)
    return report


@contextmanager
def localstripe():
    """Our loopback localstripe on a free port (empty on every start)."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "portal.localstripe_server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/js.stripe.com/v3/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _measure(kind: str, size: int, stripe_url: str, count: int) -> tuple[float, float, float]:
    """(sweep seconds, generation seconds or 0 when cached, Stripe setup seconds)."""
    from portal.jobs import run_job

    url = database_url(kind, f"sweep_{size}")
    ensure_schema(url)
    app = bench_app(url, STRIPE_API_BASE=stripe_url)
    with app.app_context():
        session = portal_db.session()
        reseller_id = ensure_reseller(session).id
        made = _ensure_accounts(session, reseller_id, size)
        every_low = _low_accounts(session, size)
        _reset(session, every_low)
        # The low accounts without a card are not charged (no primary card): left at 0 they
        # stay due, so the quick mode funds them instead.
        low, rest = every_low[:count], every_low[count:]
        _fund(session, rest)
        started = time.perf_counter()
        _cards_in_stripe(session, low)
        setup = time.perf_counter() - started
    started = time.perf_counter()
    ran = run_job("auto_recharge_sweep", app=app)
    elapsed = time.perf_counter() - started
    with app.app_context():
        _check(portal_db.session(), low, ran)
    app.extensions["engine"].dispose()
    return elapsed, made, setup


def _check(session, low: list[int], ran: int | None) -> None:
    paid = session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(Payment.account_id.in_(low), Payment.status == PaymentStatus.SUCCEEDED)
    )
    credits = session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account_id.in_(low), LedgerEntry.kind == "auto_recharge")
    )
    if not (ran == paid == credits == len(low)):
        raise RuntimeError(f"sweep ran {ran}, {paid} payments, {credits} credits for {len(low)}")


def _low_accounts(session, size: int) -> list[int]:
    step = size // LOW
    numbers = [f"S{n}" for n in range(step, size + 1, step)]
    return list(session.scalars(select(Account.id).where(Account.number.in_(numbers))))


def _reset(session, low: list[int]) -> None:
    """Put the low accounts back below the threshold, without cards, as before any run."""
    for model in (AutoRechargeAttempt, Payment, PaymentCard, LedgerEntry):
        session.execute(delete(model).where(model.account_id.in_(low)))
    session.execute(
        update(Account).where(Account.id.in_(low)).values(balance_minor=0, stripe_customer_id=None)
    )
    session.execute(
        update(AutoRechargeSetting)
        .where(AutoRechargeSetting.account_id.in_(low))
        .values(failure_count=0, next_attempt_at=None)
    )
    session.commit()


def _fund(session, account_ids: list[int]) -> None:
    """Lift accounts above the threshold (quick mode charges fewer of them)."""
    session.execute(
        update(Account).where(Account.id.in_(account_ids)).values(balance_minor=FUNDED_MINOR)
    )
    session.commit()


def _cards_in_stripe(session, low: list[int]) -> None:
    """A Stripe customer and a primary test card for each low account (portal's own calls)."""
    from portal.payments import gateway
    from portal.payments.service import link_card

    for account_id in low:
        account = session.get(Account, account_id)
        customer_id = gateway.ensure_customer(session, account)
        info = gateway.create_test_card(customer_id, "4242424242424242")
        link_card(session, account=account, info=info)


def _ensure_accounts(session, reseller_id: int, size: int) -> float:
    """`size` prepaid accounts S1..Sn, auto-recharge on for all; every (size/100)th is low."""
    have = session.scalar(select(func.count()).select_from(Account))
    if have == size:
        return 0.0
    started = time.perf_counter()
    for model in (AutoRechargeAttempt, Payment, PaymentCard, LedgerEntry, AutoRechargeSetting):
        session.execute(delete(model))
    session.execute(delete(Account))
    sqlite = session.get_bind().dialect.name == "sqlite"
    now = "CURRENT_TIMESTAMP" if sqlite else "(now() at time zone 'utc')"
    true = "1" if sqlite else "true"
    params = {
        "r": reseller_id,
        "n": size,
        "step": size // LOW,
        "funded": FUNDED_MINOR,
        "threshold": THRESHOLD_MINOR,
        "amount": AMOUNT_MINOR,
    }
    session.execute(
        text(f"""
        INSERT INTO accounts (reseller_id, number, name, email, currency, billing_model, status,
            balance_minor, credit_limit_minor, warnings_fired, transfers, created_at)
        SELECT :r, 'S' || n, 'Sweep ' || n, '', 'GBP', 'prepaid', 'active',
            CASE WHEN n % :step = 0 THEN 0 ELSE :funded END, 0, '', 'class', {now}
        FROM {sequence("sqlite" if sqlite else "postgres")}"""),  # noqa: S608
        params,
    )
    session.execute(
        text(f"""
        INSERT INTO auto_recharge_settings (account_id, enabled, threshold_minor, amount_minor,
            failure_count, updated_at)
        SELECT id, {true}, :threshold, :amount, 0, {now} FROM accounts"""),  # noqa: S608
        params,
    )
    session.commit()
    engine = portal_db.get_engine()
    for table in ("accounts", "auto_recharge_settings"):
        vacuum(engine, table)
    return time.perf_counter() - started
