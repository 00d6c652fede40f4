"""Money-event emails: each event queues one mail with a text and an HTML part."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from portal import credit, emails, plans
from portal.ledger import post_entry
from portal.models import EntryKind, Notice, OutboxEmail, utcnow
from portal.notifications import check_funds_warnings
from tests.admin.helpers import make_tenant
from tests.billing.plan_helpers import fund, make_plans, subscribe
from tests.builders import make_account, make_reseller
from tests.documents.test_documents import make_invoice


def mails(db, account_id) -> list[OutboxEmail]:
    db.rollback()
    return list(
        db.scalars(
            select(OutboxEmail).where(OutboxEmail.account_id == account_id).order_by(OutboxEmail.id)
        )
    )


def test_plan_change_confirmation(db):
    account = make_account(db, reseller=make_reseller(db), name="Alice")
    catalogue = make_plans(db)
    subscribe(db, account, catalogue["Professional"], anchor_day=1, started_on=date(2030, 11, 1))
    fund(db, account, 5000)
    db.commit()
    plans.change_plan(
        db,
        account=account,
        plan_id=catalogue["Complete"].id,
        actor_user_id=None,
        idempotency_key="change-1",
        now=datetime(2030, 11, 19, 12, tzinfo=UTC),  # 12 of 30 days left: (45 - 25) x 12/30
    )
    (mail,) = mails(db, account.id)
    assert mail.subject == "Your plan changed: Professional to Complete"
    assert "We charged £8.00 for the rest of the current billing period." in mail.body
    assert "reserve credit" not in mail.body
    assert "<strong>Complete</strong>" in mail.html_body and "£8.00" in mail.html_body


def test_every_credit_limit_change_is_mailed(db):
    acme = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    db.commit()
    account = acme.postpaid
    credit.set_permanent_limit(db, account=account, limit_minor=30000, actor=acme.admin)
    until = utcnow() + timedelta(days=7)
    credit.set_temporary_increase(
        db, account=account, amount_minor=5000, valid_until=until, actor=acme.admin
    )
    credit.remove_temporary_increase(db, account=account, actor=acme.admin)
    sent = mails(db, account.id)
    assert [m.subject for m in sent] == ["Your credit limit changed"] * 3
    assert "Before: £200.00\nNow: £300.00" in sent[0].body
    assert "Now: £350.00 (+£50.00)" in sent[1].body and "valid until" in sent[1].body
    assert "Now: £300.00" in sent[2].body
    assert "<td>£300.00</td>" in sent[0].html_body
    assert len({m.dedupe_key for m in sent}) == 3


def test_low_funds_warning_has_text_and_html(db):
    account = make_account(db, reseller=make_reseller(db), warning_thresholds="10")
    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.ADJUSTMENT,
        amount_minor=500,
        description="x",
        idempotency_key="x",
    )
    db.commit()
    assert check_funds_warnings(db, account_id=account.id) == 1
    db.commit()
    (mail,) = mails(db, account.id)
    assert mail.subject == (
        "Low funds warning: available funds £5.00 reached your threshold of £10.00"
    )
    assert "<strong>£5.00</strong>" in mail.html_body
    assert db.scalar(select(Notice.level)) == "warning"


def test_reminder_helper_for_overdue_invoices(db):
    account = make_account(db, reseller=make_reseller(db), name="Bob")
    invoice = make_invoice(db, account, number=9, paid_minor=740)
    due = date(2030, 3, 29)
    assert emails.reminder_email(
        db, account=account, invoice=invoice, due_on=due, dedupe_key="reminder:1:1"
    )
    assert not emails.reminder_email(
        db, account=account, invoice=invoice, due_on=due, dedupe_key="reminder:1:1"
    )
    db.commit()
    (mail,) = mails(db, account.id)
    number = f"INV-{account.reseller_id}-000009"
    assert mail.subject == f"Reminder: invoice {number} is overdue (£50.00 due)"
    assert "was due on 29 Mar 2030" in mail.body
    assert mail.attachments == f"invoice:{invoice.id}"


def test_templates_render_without_an_app_and_escape_html_only():
    subject, text, html = emails.render_email(
        "autorecharge_failed",
        account=type("A", (), {"name": "<Ann>", "number": "1", "currency": "GBP"})(),
        amount_minor=2000,
        reason="Card <declined>",
        next_attempt_at=datetime(2030, 1, 1, 10, tzinfo=UTC),
    )
    assert subject == "Automatic top-up of £20.00 failed"
    assert "Hello <Ann>," in text and "Card <declined>" in text
    assert "Hello &lt;Ann&gt;," in html and "Card &lt;declined&gt;" in html
    assert "01 Jan 2030 10:00 UTC" in text
