"""Configuration safety, migrations without drift, and the demo."""

import pyotp
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select

from portal import create_app, migrate
from portal.config import ConfigError
from portal.db import Base
from portal.demo import DEMO_TOTP_SECRETS
from portal.ledger import audit_balances
from portal.models import Account, TopupCard, User
from tests.builders import login


def test_production_refuses_development_secrets(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


def test_production_refuses_localstripe(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("PIN_ENCRYPTION_KEY", "y" * 40)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_real")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/portal")
    with pytest.raises(ConfigError, match="localstripe"):
        create_app()
    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.com")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_x")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["TWO_FACTOR_REQUIRED_FOR_ADMINS"] is True
    with pytest.raises(ConfigError, match="TWO_FACTOR_REQUIRED_FOR_ADMINS"):
        create_app({**app.config, "TWO_FACTOR_REQUIRED_FOR_ADMINS": False})


def _drift(url: str) -> list:
    engine = create_engine(url)
    migrate.upgrade(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_migrations_from_empty_match_the_models_on_sqlite(tmp_path):
    assert _drift(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_migrations_from_empty_match_the_models_on_postgres(pg_base_url):
    import uuid

    from sqlalchemy import text

    schema = f"m_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in pg_base_url else "?"
        assert _drift(f"{pg_base_url}{sep}options=-csearch_path%3D{schema}") == []
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_demo_seed_is_idempotent_and_audits_clean(app, demo, db):
    counts = (
        db.scalar(select(func.count(User.id))),
        db.scalar(select(func.count(Account.id))),
        db.scalar(select(func.count(TopupCard.id))),
    )
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    db.rollback()
    assert counts == (
        db.scalar(select(func.count(User.id))),
        db.scalar(select(func.count(Account.id))),
        db.scalar(select(func.count(TopupCard.id))),
    )
    assert counts[0] == 6
    assert audit_balances(db) == []
    assert runner.invoke(args=["audit-ledger"]).exit_code == 0


def test_demo_pins_are_not_stored_in_plain_text(demo, db):
    from portal.demo import DEMO_PINS

    for card in db.scalars(select(TopupCard)):
        assert card.pin_hash not in sum(DEMO_PINS.values(), [])
        assert b"555000" not in card.pin_encrypted


@pytest.mark.parametrize(
    ("email", "home"),
    [
        ("operator@example.com", "/admin/"),
        ("admin@acme.example", "/admin/"),
        ("admin@beta.example", "/admin/"),
        ("alice@example.com", "/billing/balance"),
        ("bob@example.com", "/billing/balance"),
        ("carol@example.com", "/billing/balance"),
    ],
)
@pytest.mark.parametrize("app_config", [{"TWO_FACTOR_REQUIRED_FOR_ADMINS": True}])
def test_every_demo_account_signs_in(client, demo, email, home):
    response = login(client, email, "demo-pass")
    if email in DEMO_TOTP_SECRETS:  # admins: the documented demo key gives the second factor
        assert response.headers["Location"] == "/login/two-factor"
        code = pyotp.TOTP(DEMO_TOTP_SECRETS[email]).now()
        response = client.post("/login/two-factor", data={"code": code})
    assert response.headers["Location"] == home
    assert client.get(home).status_code == 200


def test_healthz_is_bare(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok"


def test_migration_0002_gives_old_invoices_their_window_and_a_due_date(tmp_path):
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(migrate.alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as conn:  # SQLite without foreign keys: the invoice alone will do
        conn.execute(
            text(
                "INSERT INTO invoices (id, reseller_id, account_id, number, period_start,"
                " period_end, currency, subtotal_minor, tax_rate_bp, tax_minor, total_minor,"
                " paid_minor, status, issued_at) VALUES (1, 1, 1, 1, '2026-10-14', '2026-11-13',"
                " 'GBP', 100, 0, 0, 100, 0, 'open', '2026-11-14 01:00:00')"
            )
        )
    engine.dispose()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT billed_until, due_on FROM invoices")).one()
    engine.dispose()
    assert str(row.billed_until).startswith("2026-11-14 00:00:00")  # after its own period
    assert str(row.due_on) == "2026-11-28"
