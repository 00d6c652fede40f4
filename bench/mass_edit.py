"""Target 4: the mass-edit operation (set the expiry of every card) vs one raw UPDATE."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, text, update

from bench.common import Report
from bench.data import (
    bench_app,
    database_url,
    ensure_operator,
    ensure_reseller,
    ensure_schema,
    sequence,
    vacuum,
)
from portal import db as portal_db
from portal.models import BatchStatus, TopupCard, TopupCardBatch
from portal.models.base import UTCDateTime

SERIES = "MASS"


def run(kind: str, *, quick: bool) -> Report:
    count = 100_000 if quick else 1_000_000
    report = Report(f"Mass edit: expiry of {count:,} cards vs one raw UPDATE", kind)
    url = database_url(kind, f"mass_edit_{count}")
    ensure_schema(url)
    app = bench_app(url)
    with app.app_context():
        session = portal_db.session()
        reseller_id = ensure_reseller(session).id
        operator = ensure_operator(session)
        made = _ensure_cards(session, reseller_id, count)
        if made:
            report.figure(f"generated {count:,} cards set-based in {made:.1f} s (cached)")
        engine = portal_db.get_engine()
        base = datetime(2031, 1, 1, tzinfo=UTC)
        raws, domains = [], []
        # Alternating rounds, best of each: one slow moment (a checkpoint) does not decide.
        # PostgreSQL rewrites every row and its 7 index entries (~40 s per 1,000,000 here),
        # so it gets one round, to stay inside the 15-minute (2-minute quick) budget.
        rounds = 1 if kind == "postgres" else 2
        for day in range(1, 2 * rounds, 2):
            raws.append(_time_raw(session, base + timedelta(days=day)))
            vacuum(engine, "topup_cards")
            elapsed, changed = _time_mass_edit(session, operator, base + timedelta(days=day + 1))
            domains.append(elapsed)
            vacuum(engine, "topup_cards")
        raw, domain = min(raws), min(domains)
    app.extensions["engine"].dispose()
    if changed != count:
        raise RuntimeError(f"mass_edit changed {changed} cards, expected {count}")
    report.figure(f"raw UPDATE of {count:,} rows: {raw:.2f} s (best of {len(raws)})")
    report.figure(
        f"mass_edit (scope, visibility, audit row) of {count:,} cards: {domain:.2f} s "
        f"(best of {len(domains)})"
    )
    report.target("mass_edit / raw UPDATE", domain / raw, 1.5, at_least=False)
    return report


def _time_raw(session, expires_at: datetime) -> float:
    session.rollback()
    started = time.perf_counter()
    session.execute(
        update(TopupCard).values(expires_at=expires_at).execution_options(synchronize_session=False)
    )
    session.commit()
    return time.perf_counter() - started


def _time_mass_edit(session, operator, expires_at: datetime) -> tuple[float, int]:
    from portal.topup_cards import Scope, mass_edit

    session.rollback()
    started = time.perf_counter()
    changed = mass_edit(session, scope=Scope(), actor=operator, expires_at=expires_at)
    return time.perf_counter() - started, changed


def _ensure_cards(session, reseller_id: int, count: int) -> float:
    """`count` new cards of one finished batch, made by one INSERT ... SELECT (fake PINs)."""
    have = session.scalar(select(func.count()).select_from(TopupCard))
    if have == count:
        return 0.0
    started = time.perf_counter()
    session.execute(TopupCard.__table__.delete())
    session.execute(TopupCardBatch.__table__.delete())
    now = datetime.now(UTC)
    batch = TopupCardBatch(
        reseller_id=reseller_id,
        series=SERIES,
        quantity=count,
        generated=count,
        amount_minor=500,
        currency="GBP",
        pin_length=12,
        expires_at=now + timedelta(days=365),
        status=BatchStatus.DONE,
        created_at=now,
    )
    session.add(batch)
    session.flush()
    sqlite = session.get_bind().dialect.name == "sqlite"
    pin_hash = "printf('%064d', n)" if sqlite else "lpad(n::text, 64, '0')"
    blob = "x'00'" if sqlite else "'\\x00'::bytea"
    stmt = text(f"""
        INSERT INTO topup_cards (reseller_id, batch_id, serial, series, amount_minor, currency,
            pin_hash, pin_encrypted, pin_length, status, expires_at, created_at)
        SELECT :reseller, :batch, 'MASS-' || n, 'MASS', 500, 'GBP',
            {pin_hash}, {blob}, 12, 'new', :expires, :created
        FROM {sequence("sqlite" if sqlite else "postgres")}""").bindparams(  # noqa: S608
        bindparam("expires", type_=UTCDateTime()), bindparam("created", type_=UTCDateTime())
    )
    session.execute(
        stmt,
        {
            "reseller": reseller_id,
            "batch": batch.id,
            "expires": batch.expires_at,
            "created": now,
            "n": count,
        },
    )
    session.commit()
    vacuum(portal_db.get_engine(), "topup_cards")
    return time.perf_counter() - started
