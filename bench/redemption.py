"""Target 6: PIN redemption over HTTP under contention (PostgreSQL): each PIN credits once.

16 clients (own users, own loopback addresses) redeem distinct PINs; then 50 clients (50 more
users and addresses) try one shared PIN at the same moment. The lockout counts failures per
user and per address (5 in 15 minutes), so the 49 losers of the shared PIN are spread over
49 users and addresses, and the failures of earlier runs are cleared first.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from datetime import timedelta

from sqlalchemy import delete, func, insert, select

from bench.common import Browser, Gunicorn, Report, wrk
from bench.data import (
    BENCH_PIN_KEY,
    PASSWORD,
    bench_app,
    database_url,
    ensure_reseller,
    ensure_schema,
)
from portal import db as portal_db
from portal.models import (
    Account,
    BillingModel,
    CardStatus,
    LedgerEntry,
    RedeemFailure,
    Role,
    TopupCard,
    User,
    utcnow,
)

DATABASES = ["postgres"]
CLIENTS = 16
SHARED_CLIENTS = 50
PIN_LENGTH = 14


def run(kind: str, *, quick: bool) -> Report:
    pins_count = 300 if quick else 2_000
    report = Report(
        f"Redemption: {CLIENTS} clients, {pins_count:,} distinct PINs + "
        f"{SHARED_CLIENTS} on one PIN (gunicorn)",
        kind,
    )
    url = database_url(kind, "redemption")
    ensure_schema(url)
    app = bench_app(url)
    with app.app_context():
        session = portal_db.session()
        reseller_id = ensure_reseller(session).id
        emails = _ensure_users(session, reseller_id, CLIENTS + SHARED_CLIENTS)
        session.execute(delete(RedeemFailure))  # earlier runs' failures would lock users out
        session.commit()
        pins = _new_cards(session, reseller_id, pins_count + 1)
        before = _voucher_entries(session)
    shared_pin, distinct = pins[0], pins[1:]
    env = {"PIN_ENCRYPTION_KEY": BENCH_PIN_KEY, "LOGIN_RATE_LIMIT": "100000 per minute"}
    with Gunicorn(url, env) as server:
        wrk(f"{server.url}/healthz", seconds=1)  # warm-up
        base = wrk(f"{server.url}/healthz", seconds=2 if quick else 5)
        clients = _signed_in(server.url, emails[:CLIENTS], first_address=10)
        elapsed, outcomes = _redeem_distinct(clients, distinct)
        shared = _signed_in(server.url, emails[CLIENTS:], first_address=100)
        shared_outcomes = _redeem_shared(shared, shared_pin)
    with app.app_context():
        session = portal_db.session()
        credited, doubled = _credits(session, before)
        activated = session.scalar(
            select(func.count())
            .select_from(TopupCard)
            .where(TopupCard.status == CardStatus.ACTIVATED, TopupCard.pin_length == PIN_LENGTH)
        )
        from portal.ledger import audit_balances

        mismatches = audit_balances(session)
    app.extensions["engine"].dispose()
    rate = len(distinct) / elapsed
    report.figure(
        f"{len(distinct):,} distinct PINs by {CLIENTS} clients in {elapsed:.2f} s: "
        f"{rate:,.0f} redemptions/s (answers {_summary(outcomes)})"
    )
    report.figure(f"/healthz: {base.requests_per_second:,.0f} req/s in the same gunicorn")
    report.figure(f"redemptions/s / healthz req/s: {rate / base.requests_per_second:.3f}")
    report.figure(f"{SHARED_CLIENTS} concurrent attempts on one PIN: {_summary(shared_outcomes)}")
    good = (
        outcomes.get(303, 0) == len(distinct)
        and shared_outcomes.get(303, 0) == 1
        and credited == len(pins)
        and not doubled
        and activated == len(pins)
        and not mismatches
    )
    report.figure(
        f"voucher credits {credited:,} for {len(pins):,} PINs, {doubled} credited twice, "
        f"{activated:,} cards activated, ledger audit "
        f"{'passed' if not mismatches else 'FAILED'} — "
        f"**{'every PIN credited exactly once' if good else 'WRONG'}**"
    )
    if not good:
        raise RuntimeError("redemption benchmark: a PIN was lost or credited twice")
    return report


def _summary(outcomes: dict[int, int]) -> str:
    names = {303: "redeemed", 422: "refused", 429: "locked out"}
    return ", ".join(f"{names.get(k, k)} {v:,}" for k, v in sorted(outcomes.items()))


def _signed_in(base_url: str, emails: list[str], *, first_address: int) -> list[Browser]:
    browsers = []
    for n, email in enumerate(emails):
        # A loopback address of its own, as real customers would each have.
        browser = Browser(base_url, source=f"127.0.{first_address // 256 + 1}.{n + 1}")
        browser.sign_in(email, PASSWORD)
        browser.request("GET", "/billing/redeem")  # the session's CSRF token
        browsers.append(browser)
    return browsers


def _redeem_distinct(clients: list[Browser], pins: list[str]) -> tuple[float, dict[int, int]]:
    work: queue.Queue[str] = queue.Queue()
    for pin in pins:
        work.put(pin)
    outcomes: dict[int, int] = {}
    lock = threading.Lock()

    def client(browser: Browser) -> None:
        while True:
            try:
                pin = work.get_nowait()
            except queue.Empty:
                return
            status, _ = browser.request("POST", "/billing/redeem", {"pin": pin})
            with lock:
                outcomes[status] = outcomes.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(b,)) for b in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, outcomes


def _redeem_shared(clients: list[Browser], pin: str) -> dict[int, int]:
    barrier = threading.Barrier(len(clients))
    outcomes: dict[int, int] = {}
    lock = threading.Lock()

    def client(browser: Browser) -> None:
        barrier.wait()
        status, _ = browser.request("POST", "/billing/redeem", {"pin": pin})
        with lock:
            outcomes[status] = outcomes.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(b,)) for b in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _ensure_users(session, reseller_id: int, count: int) -> list[str]:
    """`count` customers, each with a prepaid account of their own."""
    from portal.auth.service import hash_password

    emails = [f"redeem{n:03d}@bench.example" for n in range(count)]
    have = set(session.scalars(select(User.email).where(User.email.in_(emails))))
    password_hash = hash_password(PASSWORD)
    for email in emails:
        if email in have:
            continue
        account = Account(
            reseller_id=reseller_id,
            number=f"R-{email.split('@')[0]}",
            name=email,
            currency="GBP",
            billing_model=BillingModel.PREPAID,
        )
        session.add(account)
        session.flush()
        session.add(
            User(
                email=email,
                role=Role.CUSTOMER,
                reseller_id=reseller_id,
                account_id=account.id,
                password_hash=password_hash,
                session_nonce="b",
            )
        )
    session.commit()
    return emails


def _new_cards(session, reseller_id: int, count: int) -> list[str]:
    """`count` fresh cards with known PINs (hashed and encrypted like generated ones)."""
    from portal.pins import PinVault

    session.execute(delete(TopupCard))  # last run's cards: all activated by now
    pin_vault = PinVault(BENCH_PIN_KEY)
    pins = list({f"{secrets.randbelow(10**PIN_LENGTH):0{PIN_LENGTH}d}" for _ in range(count)})
    now = utcnow()
    rows = [
        {
            "reseller_id": reseller_id,
            "serial": f"RD-{n:06d}-{secrets.token_hex(4)}",
            "series": "RD",
            "amount_minor": 500,
            "currency": "GBP",
            "pin_hash": pin_vault.hash(pin),
            "pin_encrypted": pin_vault.encrypt(pin),
            "pin_length": PIN_LENGTH,
            "status": CardStatus.NEW,
            "expires_at": now + timedelta(days=30),
            "created_at": now,
        }
        for n, pin in enumerate(pins)
    ]
    session.execute(insert(TopupCard.__table__), rows)
    session.commit()
    return pins


def _voucher_entries(session) -> int:
    return (
        session.scalar(select(func.max(LedgerEntry.id)).where(LedgerEntry.kind == "voucher")) or 0
    )


def _credits(session, after_id: int) -> tuple[int, int]:
    """(voucher credits of this run, cards credited more than once)."""
    per_card = (
        select(LedgerEntry.reference, func.count().label("n"))
        .where(LedgerEntry.kind == "voucher", LedgerEntry.id > after_id)
        .group_by(LedgerEntry.reference)
        .subquery()
    )
    credited = session.scalar(select(func.coalesce(func.sum(per_card.c.n), 0)))
    doubled = session.scalar(select(func.count()).select_from(per_card).where(per_card.c.n > 1))
    return int(credited), int(doubled)
