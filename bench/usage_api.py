"""Targets 5 / issue 12: the switch's charges vs /healthz, vs a lean reference endpoint
(bench/lean_api.py) and vs the database's own limit (pgbench running the same debit as one
PL/pgSQL function), side by side in one run; nothing lost or doubled.

Two endpoints: POST /api/v1/accounts/<n>/charges and POST /api/v1/card-codes/<code>/charges.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import urllib.parse
import uuid
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.common import PG_URL, ROOT, Gunicorn, LoadResult, Report, wrk
from bench.data import bench_app, database_url, ensure_reseller, ensure_schema, sequence
from portal import db as portal_db
from portal.models import Account, ApiCharge, CardCode, CardCodeCharge, LedgerEntry

ACCOUNTS = 1_000
PREFIX = "U"  # account numbers U00001 .. U01000, as the Lua script builds them
CARD_PREFIX = "77"  # card codes 7700001 .. 7701000
OPENING_MINOR = 100_000_000  # 1,000,000.00 each: no charge is ever refused for funds
CONNECTIONS = 8
SCRIPT = ROOT / "bench" / "lua" / "charges.lua"
ENV = {"PIN_ENCRYPTION_KEY": "unused-" + "z" * 32}


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
        _ensure_card_codes(session, reseller_id)
        token = _new_token(session, reseller_id)
        credit_before = _card_credit(session)
    report.figure(
        f"{ACCOUNTS:,} funded accounts and {ACCOUNTS:,} card codes; {seconds} s per load "
        "(charges: lean, ours, ours, lean for half of it each); 0.01 per charge; ours and the "
        "lean reference on the same gunicorn settings"
    )
    nonce, card_nonce = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    lean_nonce, lean_card_nonce = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    with (
        Gunicorn(url, ENV) as server,
        Gunicorn(url, ENV, app_spec="bench.lean_api:app") as lean,
    ):
        for target in (server, lean):
            wrk(f"{target.url}/healthz", seconds=1)  # warm-up
            _charges(target, token, "warm" + uuid.uuid4().hex[:8], 1, "accounts")
        base = wrk(f"{server.url}/healthz", seconds=seconds)
        # Interleaved (lean, ours, ours, lean; half the time each) so a change in the
        # machine's load during the run weighs on both sides alike.
        lean_charges, charges = _interleaved(lean, server, token, lean_nonce, nonce, seconds)
        lean_cards, cards = _interleaved(
            lean, server, token, lean_card_nonce, card_nonce, seconds, "card-codes"
        )
    database = _pgbench(url, token, seconds) if kind == "postgres" else None
    with app.app_context():
        session = portal_db.session()
        created = _count(session, LedgerEntry, LedgerEntry.idempotency_key, f"api:{nonce}%")
        stored = _stored_201(session, ApiCharge, ApiCharge.idempotency_key, nonce)
        card_stored = _stored_201(
            session, CardCodeCharge, CardCodeCharge.idempotency_key, card_nonce
        )
        lean_card_rows = _count(
            session, CardCodeCharge, CardCodeCharge.idempotency_key, f"lean:{lean_card_nonce}%"
        )
        warm_rows = _count(session, CardCodeCharge, CardCodeCharge.idempotency_key, "lean:warm%")
        warm_rows += _stored_201(session, CardCodeCharge, CardCodeCharge.idempotency_key, "warm")
        credit_used = credit_before - _card_credit(session)
        from portal.ledger import audit_balances

        mismatches = audit_balances(session)
    app.extensions["engine"].dispose()
    rows = [
        ("/healthz", base),
        ("lean reference charge", lean_charges),
        ("POST account charges", charges),
        ("lean reference card-code charge", lean_cards),
        ("POST card-code charges", cards),
    ]
    for name, result in rows:
        report.figure(
            f"{name}: {result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms"
        )
    for name, result in (("account charge", charges), ("card-code charge", cards)):
        answered = ", ".join(f"{code}: {n:,}" for code, n in sorted(result.statuses.items()))
        report.figure(f"{name} answers by status: {answered or 'none counted'}")
    ok, card_ok = charges.statuses.get(201, 0), cards.statuses.get(201, 0)
    # wrk stops reading when its time is up: up to one request per connection is still in
    # flight then, answered 201 by the server (and stored) but never counted by wrk.
    # Two loads of ours per endpoint: up to 2 x CONNECTIONS answers in flight at their ends.
    exact = created == stored and 0 <= stored - ok <= 2 * CONNECTIONS
    card_exact = credit_used == card_stored + lean_card_rows + warm_rows and (
        0 <= card_stored - card_ok <= 2 * CONNECTIONS
    )
    report.figure(
        f"ledger audit: {'passed' if not mismatches else f'{len(mismatches)} MISMATCHES'}; "
        f"new ledger entries {created:,} = 201 answers {stored:,} "
        f"({ok:,} read by wrk + {stored - ok} in flight when wrk stopped) — "
        f"**{'nothing lost, nothing doubled' if exact else 'MISMATCH'}**"
    )
    report.figure(
        f"card-code credit used {credit_used:,} minor = {card_stored:,} stored 201 answers + "
        f"{lean_card_rows + warm_rows:,} lean/warm-up charges — "
        f"**{'nothing lost, nothing doubled' if card_exact else 'MISMATCH'}**"
    )
    if database is not None:
        report.figure(
            f"database's own limit (pgbench, {CONNECTIONS} clients, the same debit as one "
            f"PL/pgSQL function: token hash lookup, funds-checked UPDATE, ledger insert): "
            f"{database[0]:,.0f} tps, latency average {database[1]:.1f} ms; "
            f"{database[0] / base.requests_per_second:.2f}x /healthz"
        )
        report.figure(
            f"account charges / pgbench: {charges.requests_per_second / database[0]:.2f}; "
            f"lean reference / pgbench: {lean_charges.requests_per_second / database[0]:.2f}; "
            f"card-code charges / pgbench: {cards.requests_per_second / database[0]:.2f}"
        )
    p99_limit = 50 if kind == "postgres" else 100
    for name, ours, floor in (
        ("account charges", charges, lean_charges),
        ("card-code charges", cards, lean_cards),
    ):
        if kind == "postgres":
            report.target(
                f"{name} / healthz req/s",
                ours.requests_per_second / base.requests_per_second,
                0.30,
                at_least=True,
            )
            report.target(
                f"{name} / lean reference req/s",
                ours.requests_per_second / floor.requests_per_second,
                0.8,
                at_least=True,
            )
        else:
            report.figure(
                f"{name} / healthz req/s: {ours.requests_per_second / base.requests_per_second:.2f}"
                f"; / lean reference: {ours.requests_per_second / floor.requests_per_second:.2f}"
            )
        report.target(f"{name} p99 ms", ours.p99_ms, p99_limit, at_least=False)
    if mismatches or not exact or not card_exact or ok == 0 or card_ok == 0:
        raise RuntimeError("usage API benchmark: the ledger does not match the answers")
    return report


def _interleaved(
    lean: Gunicorn,
    ours: Gunicorn,
    token: str,
    lean_nonce: str,
    nonce: str,
    seconds: int,
    path: str = "accounts",
) -> tuple[LoadResult, LoadResult]:
    """lean, ours, ours, lean for half the time each; rates averaged, the worse p50/p99."""
    half = max(1, seconds // 2)
    runs = [
        (lean, lean_nonce + "a"),
        (ours, nonce + "a"),
        (ours, nonce + "b"),
        (lean, lean_nonce + "b"),
    ]
    results = [_charges(server, token, key, half, path) for server, key in runs]
    return _merge(results[0], results[3]), _merge(results[1], results[2])


def _merge(first: LoadResult, second: LoadResult) -> LoadResult:
    statuses = dict(first.statuses)
    for code, n in second.statuses.items():
        statuses[code] = statuses.get(code, 0) + n
    return LoadResult(
        (first.requests_per_second + second.requests_per_second) / 2,
        max(first.p50_ms, second.p50_ms),
        max(first.p99_ms, second.p99_ms),
        first.non_2xx + second.non_2xx,
        statuses,
        first.requests + second.requests,
    )


def _charges(server: Gunicorn, token: str, nonce: str, seconds: int, path: str) -> LoadResult:
    prefix = PREFIX if path == "accounts" else CARD_PREFIX
    return wrk(
        f"{server.url}/",
        seconds=seconds,
        connections=CONNECTIONS,
        script=SCRIPT,
        script_args=[token, str(ACCOUNTS), prefix, nonce, path],
    )


PGBENCH_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_debit(p_token text, p_n int, p_amount bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_reseller int; v_id int; v_balance bigint; v_currency varchar; v_entry bigint;
BEGIN
  SELECT reseller_id INTO v_reseller FROM api_tokens
   WHERE token_hash = encode(sha256(convert_to(p_token, 'UTF8')), 'hex') AND revoked_at IS NULL;
  IF v_reseller IS NULL THEN RETURN NULL; END IF;
  UPDATE accounts SET balance_minor = balance_minor - p_amount
   WHERE number = 'U' || lpad(p_n::text, 5, '0') AND reseller_id = v_reseller
     AND status = 'active' AND balance_minor >= p_amount
   RETURNING id, balance_minor, currency INTO v_id, v_balance, v_currency;
  IF v_id IS NULL THEN RETURN NULL; END IF;
  INSERT INTO ledger_entries (account_id, kind, amount_minor, balance_after_minor, currency,
      description, reference, idempotency_key, created_at)
  VALUES (v_id, 'usage', -p_amount, v_balance, v_currency, 'pgbench call', '',
      'pgbench:' || gen_random_uuid(), now() at time zone 'utc')
  RETURNING id INTO v_entry;
  RETURN v_entry;
END $$;
"""


def _pgbench(url: str, token: str, seconds: int) -> tuple[float, float]:
    """pgbench, 8 clients, each transaction one bench_debit() call: (tps, latency ms)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(PGBENCH_FUNCTION))
    engine.dispose()
    options = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["options"][0]
    target = make_url(PG_URL)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(f"\\set n random(1, {ACCOUNTS})\nSELECT bench_debit('{token}', :n, 1);\n")
        script = Path(fh.name)
    try:
        out = subprocess.run(  # noqa: S603
            [
                "pgbench",
                "-n",
                f"-c{CONNECTIONS}",
                "-j2",
                f"-T{seconds}",
                "-f",
                str(script),
                "-h",
                target.host or "127.0.0.1",
                "-p",
                str(target.port or 5432),
                "-U",
                target.username or "postgres",
                target.database or "postgres",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PGOPTIONS": options},
        ).stdout
    finally:
        script.unlink()
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return tps, float(latency.group(1)) if latency else 0.0


def _count(session, model, column, pattern: str) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(model).where(column.like(pattern)))


def _stored_201(session, model, column, nonce: str) -> int:
    """201 answers the server gave this run (every answer is stored for idempotent replay)."""
    return session.scalar(
        select(func.count())
        .select_from(model)
        .where(column.like(f"{nonce}%"), model.status_code == 201)
    )


def _card_credit(session) -> int:
    session.rollback()
    return session.scalar(
        select(func.coalesce(func.sum(CardCode.credit_minor), 0)).where(
            CardCode.code.like(f"{CARD_PREFIX}%")
        )
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


def _ensure_card_codes(session, reseller_id: int) -> None:
    """1,000 card codes (7700001 ..), each on one of the accounts, with a large credit."""
    have = session.scalar(
        select(func.count()).select_from(CardCode).where(CardCode.code.like(f"{CARD_PREFIX}%"))
    )
    if have == ACCOUNTS:
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    code = "printf('77%05d', n)" if sqlite else "'77' || lpad(n::text, 5, '0')"
    number = "printf('U%05d', n)" if sqlite else "'U' || lpad(n::text, 5, '0')"
    now = "CURRENT_TIMESTAMP" if sqlite else "(now() at time zone 'utc')"
    session.execute(
        text(f"""
        INSERT INTO card_codes (reseller_id, account_id, extension, code, unlimited,
            credit_minor, currency, created_at)
        SELECT :r, (SELECT id FROM accounts WHERE number = {number}), '', {code}, false, :m,
            'GBP', {now}
        FROM {sequence("sqlite" if sqlite else "postgres")}"""),  # noqa: S608
        {"r": reseller_id, "n": ACCOUNTS, "m": OPENING_MINOR},
    )
    session.commit()
