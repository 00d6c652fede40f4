"""Target 3: generating top-up cards (hash + encryption) vs a raw Core insert of the same rows."""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text

from bench.common import Report
from bench.data import bench_app, database_url, ensure_operator, ensure_reseller, ensure_schema
from bench.data import vacuum as vacuum_table
from portal import db as portal_db
from portal.models import BatchStatus, CardStatus, TopupCard, TopupCardBatch, utcnow

PIN_LENGTH = 12  # 100,000 live PINs need 10^11+ of space to keep a guess at 1 in 1,000


def run(kind: str, *, quick: bool) -> Report:
    count = 10_000 if quick else 100_000
    report = Report(f"Card generation: {count:,} top-up cards vs raw Core insert", kind)
    url = database_url(kind, "cards")
    ensure_schema(url)
    app = bench_app(url)
    with app.app_context():
        session = portal_db.session()
        reseller_id = ensure_reseller(session).id
        operator_id = ensure_operator(session).id
        engine = portal_db.get_engine()
        _clear(session, engine)
        raw = _time_raw_insert(session, reseller_id, count)
        _clear(session, engine)
        domain = _time_generate(session, reseller_id, operator_id, count)
        visible = session.scalar(select(func.count()).select_from(TopupCard))
        _clear(session, engine)
    app.extensions["engine"].dispose()
    if visible != count:
        raise RuntimeError(f"generate_cards left {visible} cards, expected {count}")
    report.figure(f"raw Core bulk insert of {count:,} rows: {raw:.2f} s")
    report.figure(
        f"generate_cards ({count:,} cards, keyed hash + AES-GCM per PIN, uniqueness checks): "
        f"{domain:.2f} s ({count / domain:,.0f} cards/s)"
    )
    report.target("generate_cards / raw insert", domain / raw, 2.0, at_least=False)
    return report


def _clear(session, engine) -> None:
    session.rollback()
    session.execute(delete(TopupCard))
    session.execute(delete(TopupCardBatch))
    session.commit()
    vacuum_table(engine, "topup_cards")


def _time_generate(session, reseller_id: int, operator_id: int, count: int) -> float:
    from portal.topup_cards import generate_cards

    started = time.perf_counter()
    batch = generate_cards(
        session,
        reseller_id=reseller_id,
        amount_minor=1_000,
        quantity=count,
        series="BENCH",
        pin_length=PIN_LENGTH,
        expires_at=utcnow() + timedelta(days=365),
        actor_user_id=operator_id,
    )
    elapsed = time.perf_counter() - started
    if batch.status != BatchStatus.DONE:
        raise RuntimeError(f"batch ended {batch.status}: {batch.error}")
    return elapsed


def _time_raw_insert(session, reseller_id: int, count: int) -> float:
    """The same rows (same table, same shape, random values) through one Core executemany."""
    now = utcnow()
    batch = TopupCardBatch(
        reseller_id=reseller_id,
        series="RAW",
        quantity=count,
        generated=count,
        amount_minor=1_000,
        currency="GBP",
        pin_length=PIN_LENGTH,
        expires_at=now + timedelta(days=365),
        status=BatchStatus.DONE,
    )
    session.add(batch)
    session.commit()
    # Pre-computed outside the timer: random serials, 64-hex "hashes", 41-byte "ciphertexts"
    # (the length of the portal's AES-GCM tokens of a 12-digit PIN).
    rows = [
        {
            "reseller_id": reseller_id,
            "batch_id": batch.id,
            "serial": f"RAW-{serial:010d}",
            "series": "RAW",
            "amount_minor": 1_000,
            "currency": "GBP",
            "pin_hash": secrets.token_hex(32),
            "pin_encrypted": os.urandom(41),
            "pin_length": PIN_LENGTH,
            "status": CardStatus.NEW,
            "expires_at": batch.expires_at,
            "created_at": now,
        }
        for serial in random.sample(range(10**10), count)
    ]
    started = time.perf_counter()
    if session.get_bind().dialect.name == "sqlite":
        # The same page cache generate_cards gives itself, so the baseline is not handicapped.
        session.execute(text("PRAGMA cache_size = -65536"))
    session.execute(insert(TopupCard.__table__), rows)
    session.commit()
    return time.perf_counter() - started
