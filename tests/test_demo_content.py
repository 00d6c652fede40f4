"""The demo shows every page with content: Bob's history and paid, open and overdue invoices,
Alice's reserve credit and redemptions, a disputed payment on admin Payments."""

from __future__ import annotations

import pyotp
from sqlalchemy import func, select

from portal.demo import DEMO_TOTP_SECRETS
from portal.models import (
    Account,
    EntryKind,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentDispute,
    PaymentStatus,
    ReserveGrant,
)
from tests.builders import login


def _account(db, number: str) -> Account:
    return db.scalar(select(Account).where(Account.number == number))


def test_bob_has_history_and_paid_open_and_overdue_invoices(client, demo, db):
    bob = _account(db, "100002")
    statuses = set(db.scalars(select(Invoice.status).where(Invoice.account_id == bob.id)))
    assert {s.value for s in statuses} >= {"paid", "open", "overdue"}
    entries = db.scalar(select(func.count(LedgerEntry.id)).where(LedgerEntry.account_id == bob.id))
    assert entries > 50
    login(client, "bob@example.com", "demo-pass")
    home = client.get("/billing").text
    assert 'id="home-unpaid"' in home and "invoice is overdue" in home


def test_alice_has_reserve_credit_and_redeemed_cards(client, demo, db):
    alice = _account(db, "100001")
    grants = list(db.scalars(select(ReserveGrant).where(ReserveGrant.account_id == alice.id)))
    assert len(grants) == 2 and any(g.remaining_minor < g.amount_minor for g in grants)
    redeemed = db.scalar(
        select(func.count(LedgerEntry.id)).where(
            LedgerEntry.account_id == alice.id, LedgerEntry.kind == EntryKind.VOUCHER
        )
    )
    assert redeemed == 2
    login(client, "alice@example.com", "demo-pass")
    assert "Credit from an earlier plan change" in client.get("/billing/reserve").text


def test_a_disputed_payment_shows_on_admin_payments(client, demo, db):
    payment = db.scalar(select(Payment).where(Payment.idempotency_key == "demo-disputed-payment"))
    assert payment.status == PaymentStatus.DISPUTED and payment.disputed
    assert db.scalar(select(PaymentDispute).where(PaymentDispute.payment_id == payment.id))
    login(client, "admin@acme.example", "demo-pass")
    code = pyotp.TOTP(DEMO_TOTP_SECRETS["admin@acme.example"]).now()
    client.post("/login/two-factor", data={"code": code})
    listing = client.get("/admin/payments").text
    assert f"Payment {payment.id}" in listing and "Disputed" in listing
    overview = client.get("/admin/").text
    assert 'id="redemptions-total">0<' not in overview and 'id="topups-total">0<' not in overview


def test_the_admin_overview_lists_a_customer_near_the_limit(client, demo):
    login(client, "admin@acme.example", "demo-pass")
    code = pyotp.TOTP(DEMO_TOTP_SECRETS["admin@acme.example"]).now()
    client.post("/login/two-factor", data={"code": code})
    overview = client.get("/admin/").text
    assert "Erin&#39;s Events" in overview and "90%" in overview
