"""Target 5: POST /api/v1/accounts/<n>/charges under load vs /healthz; nothing lost or doubled."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text

from bench.common import ROOT, Gunicorn, Report, wrk
from bench.data import bench_app, database_url, ensure_reseller, ensure_schema, sequence
from portal import db as portal_db
from portal.models import Account, ApiCharge, LedgerEntry

ACCOUNTS = 1_000
PREFIX = "U"  # account numbers U00001 .. U01000, as the Lua script builds them
OPENING_MINOR = 100_000_000  # 1,000,000.00 each: no charge is ever refused for funds
CONNECTIONS = 8
SCRIPT = ROOT / "bench" / "lua" / "charges.lua"


def run(kind: str, *, quick: bool) -> Report:
    seconds = 3 if quick else 10
    report = Report("Usage API: charges from 8 connections over 1,000 accounts", kind)
    url = database_url(kind, "usage_api")
    ensure_schema(url)
    app = bench_app(url)
    with app.app_context():
        session = portal_db.session()
        reseller_id = ensure_reseller(session).id
        _ensure_accounts(session, reseller_id)
        token = _new_token(session, reseller_id)
        before = _entry_count(session)
    report.figure(f"{ACCOUNTS:,} funded accounts; {seconds} s per load; 0.01 per charge")
    with Gunicorn(url, {"PIN_ENCRYPTION_KEY": "unused-" + "z" * 32}) as server:
        wrk(f"{server.url}/healthz", seconds=1)  # warm-up
        base = wrk(f"{server.url}/healthz", seconds=seconds)
        nonce = uuid.uuid4().hex[:12]
        charges = wrk(
            f"{server.url}/",
            seconds=seconds,
            script=SCRIPT,
            script_args=[token, str(ACCOUNTS), PREFIX, nonce],
        )
    with app.app_context():
        session = portal_db.session()
        created = _entry_count(session) - before
        stored = _stored_201(session, nonce)
        from portal.ledger import audit_balances

        mismatches = audit_balances(session)
    app.extensions["engine"].dispose()
    for name, result in (("/healthz", base), ("POST charges", charges)):
        report.figure(
            f"{name}: {result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms"
        )
    answered = ", ".join(f"{code}: {n:,}" for code, n in sorted(charges.statuses.items()))
    report.figure(f"charge answers by status: {answered or 'none counted'}")
    ok = charges.statuses.get(201, 0)
    # wrk stops reading when its time is up: up to one request per connection is still in
    # flight then, answered 201 by the server (and stored) but never counted by wrk.
    unread = stored - ok
    exact = created == stored and 0 <= unread <= CONNECTIONS
    report.figure(
        f"ledger audit: {'passed' if not mismatches else f'{len(mismatches)} MISMATCHES'}; "
        f"new ledger entries {created:,} = 201 answers {stored:,} "
        f"({ok:,} read by wrk + {unread} in flight when wrk stopped) — "
        f"**{'nothing lost, nothing doubled' if exact else 'MISMATCH'}**"
    )
    report.target(
        "charges / healthz req/s",
        charges.requests_per_second / base.requests_per_second,
        0.30,
        at_least=True,
    )
    if mismatches or not exact or ok == 0:
        raise RuntimeError("usage API benchmark: the ledger does not match the answers")
    return report


def _entry_count(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(LedgerEntry))


def _stored_201(session, nonce: str) -> int:
    """201 answers the server gave this run (every answer is stored for idempotent replay)."""
    return session.scalar(
        select(func.count())
        .select_from(ApiCharge)
        .where(ApiCharge.idempotency_key.like(f"{nonce}-%"), ApiCharge.status_code == 201)
    )


def _new_token(session, reseller_id: int) -> str:
    """A fresh API token for this run (only its hash is stored, so it cannot be reused)."""
    from portal.api_tokens import create_token

    token = create_token(session, reseller_id=reseller_id, name=f"bench {uuid.uuid4().hex[:6]}")
    session.commit()
    return token.plaintext


def _ensure_accounts(session, reseller_id: int) -> None:
    """1,000 prepaid accounts, each with one opening credit in the ledger (set-based)."""
    have = session.scalar(
        select(func.count()).select_from(Account).where(Account.number.like(f"{PREFIX}%"))
    )
    if have == ACCOUNTS:
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    number = "printf('U%05d', n)" if sqlite else "'U' || lpad(n::text, 5, '0')"
    now = "CURRENT_TIMESTAMP" if sqlite else "(now() at time zone 'utc')"
    params = {"r": reseller_id, "n": ACCOUNTS, "m": OPENING_MINOR}
    session.execute(
        text(f"""
        INSERT INTO accounts (reseller_id, number, name, email, currency, billing_model, status,
            balance_minor, credit_limit_minor, warnings_fired, transfers, created_at)
        SELECT :r, {number}, 'Usage ' || n, '', 'GBP', 'prepaid', 'active', :m, 0, '', 'class',
            {now}
        FROM {sequence("sqlite" if sqlite else "postgres")}"""),  # noqa: S608
        params,
    )
    session.execute(
        text(f"""
        INSERT INTO ledger_entries (account_id, kind, amount_minor, balance_after_minor,
            currency, description, reference, idempotency_key, created_at)
        SELECT id, 'adjustment', :m, :m, 'GBP', 'Opening balance', '', 'bench-opening', {now}
        FROM accounts WHERE number LIKE 'U%'"""),  # noqa: S608
        {"m": OPENING_MINOR},
    )
    session.commit()
