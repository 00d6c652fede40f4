"""Notifications: outbox + notice, sending through a real SMTP server on loopback, retries."""

from __future__ import annotations

import email
import email.policy
import io
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader
from sqlalchemy import func, select

from portal import emails, jobs
from portal.models import MailStatus, Notice, OutboxEmail, Role
from portal.notifications import notify
from tests.builders import login, make_account, make_customer, make_reseller, make_user
from tests.conftest import free_port
from tests.documents.test_documents import make_invoice

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def app_config(request):
    if "smtp" in request.fixturenames:
        controller, inbox = request.getfixturevalue("smtp")
        inbox.messages.clear()
        return {
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": controller.port,
            "MAIL_FROM": "billing@test",
        }
    return {}


def test_notify_queues_one_mail_and_one_notice(db):
    account = make_account(db, reseller=make_reseller(db), email="a@example.test")
    assert notify(db, account=account, subject="Hello", body="Body", dedupe_key="k1")
    assert not notify(db, account=account, subject="Hello", body="Body", dedupe_key="k1")
    db.commit()
    mails = db.scalars(select(OutboxEmail)).all()
    assert [(m.to_address, m.subject, m.status) for m in mails] == [
        ("a@example.test", "Hello", MailStatus.PENDING)
    ]
    assert mails[0].account_id == account.id and mails[0].reseller_id == account.reseller_id
    assert db.scalar(select(func.count()).select_from(Notice)) == 1


def test_outbox_sends_through_smtp(app, db, smtp):
    _controller, inbox = smtp
    account = make_account(db, reseller=make_reseller(db), email="bob@example.test")
    notify(db, account=account, subject="Invoice ready", body="See the link", dedupe_key="m1")
    db.commit()
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["bob@example.test"] and envelope.mail_from == "billing@test"
    assert b"Subject: Invoice ready" in envelope.content and b"See the link" in envelope.content
    # Without an HTML part or attachments the mail stays a single text/plain part.
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert not message.is_multipart() and message.get_content_type() == "text/plain"
    db.rollback()
    db.expire_all()
    mail = db.scalar(select(OutboxEmail))
    assert mail.status == MailStatus.SENT and mail.attempts == 1 and mail.sent_at is not None
    # Sent mail is never sent again.
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 0
    assert len(inbox.messages) == 1


@pytest.fixture
def broken_smtp():
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": free_port()}  # nobody listens


def test_failed_sends_retry_with_backoff_then_give_up(app, db, broken_smtp):
    app.config.update(broken_smtp)
    account = make_account(db, reseller=make_reseller(db))
    notify(db, account=account, subject="S", body="B", dedupe_key="m1")
    db.commit()
    db.rollback()
    db.expire_all()
    db.scalar(select(OutboxEmail)).next_attempt_at = T0
    db.commit()
    assert jobs.run_job("email_outbox", app=app, now=T0) == 0
    db.rollback()
    db.expire_all()
    mail = db.scalar(select(OutboxEmail))
    assert mail.status == MailStatus.PENDING and mail.attempts == 1
    assert mail.next_attempt_at == T0 + timedelta(minutes=1) and mail.last_error
    assert jobs.run_job("email_outbox", app=app, now=T0 + timedelta(seconds=30)) == 0
    db.rollback()
    db.expire_all()
    assert db.scalar(select(OutboxEmail)).attempts == 1  # not due yet
    now = T0
    for _ in range(5):
        now += timedelta(days=1)
        jobs.run_job("email_outbox", app=app, now=now)
    db.rollback()
    db.expire_all()
    mail = db.scalar(select(OutboxEmail))
    assert mail.status == MailStatus.FAILED and mail.attempts == 6


def test_without_mail_server_mails_stay_in_the_outbox(app, db):
    account = make_account(db, reseller=make_reseller(db))
    notify(db, account=account, subject="S", body="B", dedupe_key="m1")
    db.commit()
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    db.rollback()
    db.expire_all()
    assert db.scalar(select(OutboxEmail)).status == MailStatus.OUTBOX


def test_admin_outbox_is_tenant_scoped(client, db):
    mine, theirs = make_reseller(db), make_reseller(db)
    notify(
        db, account=make_account(db, reseller=mine), subject="For mine", body="b", dedupe_key="1"
    )
    notify(
        db,
        account=make_account(db, reseller=theirs),
        subject="For theirs",
        body="b",
        dedupe_key="2",
    )
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=mine)
    db.commit()
    login(client, admin.email)
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "For mine" in page and "For theirs" not in page
    assert client.get("/admin/outbox?status=bogus").status_code == 200
    fragment = client.get("/admin/outbox?status=pending", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and "For mine" in fragment.get_data(
        as_text=True
    )


def test_customer_sees_and_marks_notices(client, db):
    user = make_customer(db)
    other = make_customer(db)
    notify(db, account=user.account, subject="Low funds warning", body="b", dedupe_key="1")
    notify(db, account=other.account, subject="Someone else's", body="b", dedupe_key="2")
    db.commit()
    login(client, user.email)
    page = client.get("/billing/notices").get_data(as_text=True)
    assert "Low funds warning" in page and "Someone else" not in page
    response = client.post("/billing/notices/read")
    assert response.status_code == 303
    db.rollback()
    db.expire_all()
    notices = {n.message: n.read_at for n in db.scalars(select(Notice))}
    assert notices["Low funds warning"] is not None and notices["Someone else's"] is None


def test_invoice_mail_is_multipart_text_html_and_the_pdf(app, db, smtp):
    _controller, inbox = smtp
    account = make_account(
        db, reseller=make_reseller(db), email="bob@example.test", name="Bob & <Co>"
    )
    invoice = make_invoice(db, account, number=3)
    assert emails.invoice_email(db, account=account, invoice=invoice)
    assert not emails.invoice_email(db, account=account, invoice=invoice)  # once per invoice
    db.commit()
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    (envelope,) = inbox.messages
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    number = f"INV-{account.reseller_id}-000003"
    assert message["Subject"] == f"Invoice {number}: £57.40"
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.get_payload()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert "Hello Bob & <Co>," in text.get_content()
    assert f"/billing/invoices/{invoice.id}" in text.get_content()
    assert "Bob &amp; &lt;Co&gt;" in html.get_content() and "<Co>" not in html.get_content()
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{number}.pdf"
    pdf = PdfReader(io.BytesIO(attachment.get_content()))
    assert "Total £57.40" in " ".join(pdf.pages[0].extract_text().split())
    db.rollback()
    assert db.scalar(select(OutboxEmail)).status == MailStatus.SENT


def test_a_mail_whose_document_is_gone_is_retried_without_blocking_others(app, db, smtp):
    _controller, inbox = smtp
    account = make_account(db, reseller=make_reseller(db), email="c@example.test")
    notify(
        db, account=account, subject="Broken", body="b", dedupe_key="x", attachments=["invoice:999"]
    )
    notify(db, account=account, subject="Fine", body="b", dedupe_key="y")
    db.commit()
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    assert [m.content for m in inbox.messages if b"Subject: Fine" in m.content]
    db.rollback()
    broken = db.scalar(select(OutboxEmail).where(OutboxEmail.subject == "Broken"))
    assert broken.status == MailStatus.PENDING and "no longer exists" in broken.last_error


def test_mails_held_without_a_server_are_sent_once_one_is_configured(app, db, smtp):
    _controller, inbox = smtp
    account = make_account(db, reseller=make_reseller(db), email="d@example.test")
    notify(db, account=account, subject="Held", body="b", dedupe_key="h")
    db.commit()
    server = app.config.pop("MAIL_SERVER")
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    db.rollback()
    assert db.scalar(select(OutboxEmail)).status == MailStatus.OUTBOX and not inbox.messages
    app.config["MAIL_SERVER"] = server
    assert jobs.run_job("email_outbox", app=app, now=datetime.now(UTC)) == 1
    assert len(inbox.messages) == 1
    db.rollback()
    assert db.scalar(select(OutboxEmail)).status == MailStatus.SENT


def test_admin_outbox_previews_text_and_sandboxed_html_and_says_queued(client, db):
    mine, theirs = make_reseller(db), make_reseller(db)
    account = make_account(db, reseller=mine, name='<script>alert("x")</script>')
    invoice = make_invoice(db, account, number=3)
    emails.invoice_email(db, account=account, invoice=invoice)
    notify(
        db, account=make_account(db, reseller=theirs), subject="Theirs", body="b", dedupe_key="t"
    )
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=mine)
    db.commit()
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.account_id == account.id))
    other = db.scalar(select(OutboxEmail).where(OutboxEmail.subject == "Theirs"))
    login(client, admin.email)
    listing = client.get("/admin/outbox").get_data(as_text=True)
    assert f'href="/admin/outbox/{mail.id}"' in listing and ">Queued<" in listing
    page = client.get(f"/admin/outbox/{mail.id}").get_data(as_text=True)
    assert "queued until an SMTP server accepts it" in page
    assert "Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;," in page  # the text part
    assert '<iframe class="mail-html" title="HTML part of the mail" sandbox="" srcdoc="' in page
    srcdoc = page.split('srcdoc="', 1)[1].split('"', 1)[0]
    # The HTML part is escaped into the attribute: no markup of it reaches the admin page.
    assert "<" not in srcdoc and "&lt;p&gt;" in srcdoc and "<script>" not in page
    assert f"INV-{account.reseller_id}-000003.pdf" in page
    assert client.get(f"/admin/outbox/{other.id}").status_code == 404
    assert client.get("/admin/outbox/999999").status_code == 404
