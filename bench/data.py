"""Benchmark data, made with set-based inserts and cached between runs."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import create_engine, func, select, text

from bench.common import CACHE, PG_URL
from portal import create_app
from portal.db import Base

PASSWORD = "bench-pass"  # noqa: S105


def schema_fingerprint() -> str:
    import portal.models  # noqa: F401

    shape = sorted(
        f"{t.name}:{','.join(sorted(c.name for c in t.columns))}"
        for t in Base.metadata.tables.values()
    )
    return hashlib.sha256("|".join(shape).encode()).hexdigest()[:10]


def database_url(kind: str, name: str) -> str:
    """A cached database for `name`: a SQLite file or a PostgreSQL schema."""
    tag = f"{name}_{schema_fingerprint()}"
    if kind == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{CACHE / (tag + '.db')}"
    schema = f"bench_{tag}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def ensure_schema(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def app_for(url: str):
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
    )


def ensure_customer(url: str, email: str, entries: int) -> int:
    """A prepaid customer `email` whose account holds exactly `entries` ledger entries."""
    from portal import db
    from portal.auth.service import hash_password
    from portal.models import Account, BillingModel, LedgerEntry, Reseller, Role, User

    ensure_schema(url)
    app = app_for(url)
    with app.app_context():
        session = db.session()
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            reseller = session.scalar(select(Reseller).where(Reseller.name == "Bench Telecom"))
            if reseller is None:
                reseller = Reseller(name="Bench Telecom", currency="GBP")
                session.add(reseller)
                session.flush()
            account = Account(
                reseller_id=reseller.id,
                number=f"B-{email}",
                name=email,
                currency="GBP",
                billing_model=BillingModel.PREPAID,
            )
            session.add(account)
            session.flush()
            user = User(
                email=email,
                role=Role.CUSTOMER,
                reseller_id=reseller.id,
                account_id=account.id,
                password_hash=hash_password(PASSWORD),
                session_nonce="b",
            )
            session.add(user)
            session.commit()
        account_id = user.account_id
        have = session.scalar(
            select(func.count(LedgerEntry.id)).where(LedgerEntry.account_id == account_id)
        )
        if have != entries:
            _fill_ledger(session, account_id, entries)
        return account_id


def _fill_ledger(session, account_id: int, entries: int) -> None:
    """Replace the account's entries with `entries` rows of +1p spread over 120 days."""
    from portal.models import Account, LedgerEntry

    session.execute(LedgerEntry.__table__.delete().where(LedgerEntry.account_id == account_id))
    span = int(timedelta(days=120).total_seconds())
    params = {"a": account_id, "n": entries, "span": span}
    if session.bind.dialect.name == "sqlite":
        session.execute(
            text("""
            INSERT INTO ledger_entries (account_id, kind, amount_minor, balance_after_minor,
                currency, description, reference, idempotency_key, created_at)
            WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n)
            SELECT :a, 'usage', 1, n, 'GBP', 'Bench entry ' || n, '', 'b' || n,
                   datetime('now', '-' || ((:n - n) * :span / :n) || ' seconds')
            FROM seq"""),
            params,
        )
    else:
        session.execute(
            text("""
            INSERT INTO ledger_entries (account_id, kind, amount_minor, balance_after_minor,
                currency, description, reference, idempotency_key, created_at)
            SELECT :a, 'usage', 1, n, 'GBP', 'Bench entry ' || n, '', 'b' || n,
                   (now() at time zone 'utc') - make_interval(secs => (:n - n)::bigint * :span / :n)
            FROM generate_series(1, :n) AS n"""),
            params,
        )
        session.execute(text("ANALYZE ledger_entries"))
    session.get(Account, account_id).balance_minor = entries
    session.commit()


# --- Shared helpers for the other benchmarks ---------------------------------------------

BENCH_PIN_KEY = "bench-pin-key-" + "y" * 32  # noqa: S105 - the bench app and gunicorn share it


def bench_app(url: str, **overrides):
    """The in-process app of a benchmark, with the PIN key gunicorn gets too."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "PIN_ENCRYPTION_KEY": BENCH_PIN_KEY,
            "AFTER_DEBIT_CHECKS": "off",
            **overrides,
        }
    )


def ensure_reseller(session, name: str = "Bench Telecom"):
    """The benchmark reseller (GBP), created on first use; committed."""
    from portal.models import Reseller

    reseller = session.scalar(select(Reseller).where(Reseller.name == name))
    if reseller is None:
        reseller = Reseller(name=name, currency="GBP")
        session.add(reseller)
        session.commit()
    return reseller


def ensure_operator(session, email: str = "operator@bench.example"):
    """An operator user (sees every reseller); committed."""
    from portal.auth.service import hash_password
    from portal.models import Role, User

    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(
            email=email,
            role=Role.OPERATOR,
            password_hash=hash_password(PASSWORD),
            session_nonce="b",
        )
        session.add(user)
        session.commit()
    return user


def is_sqlite(session_or_engine) -> bool:
    bind = getattr(session_or_engine, "bind", None) or session_or_engine
    return bind.dialect.name == "sqlite"


def vacuum(engine, table: str) -> None:
    """Reclaim dead rows and refresh planner statistics after set-based changes.

    Statistics matter on SQLite too: without them its planner drives the auto-recharge
    sweep from the `enabled` index (every account: 250 ms at 1,000,000) instead of the
    balance index (2.5 ms). A PostgreSQL server's autovacuum analyzes on its own.
    """
    if engine.dialect.name == "sqlite":
        # SQLite reuses freed pages; VACUUM would rewrite the whole file.
        with engine.begin() as conn:
            conn.execute(text(f"ANALYZE {table}"))
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {table}"))


def sequence(kind: str) -> str:
    """A FROM clause yielding n = 1..:n (a recursive CTE on SQLite, generate_series elsewhere)."""
    if kind == "sqlite":
        return (
            "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq "
            "WHERE n < :n) SELECT n FROM seq) AS s"
        )
    return "generate_series(1, :n) AS s(n)"
