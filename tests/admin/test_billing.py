"""The admin Billing area: Review Billing Details, Generate the Invoice, Send out the Invoice,
the invoice list with filters and CSV, and void with a numbered credit note.

Each test arranges two resellers (Acme, whose admin signs in, and Beta) with subscribed
customers whose current period has started and is not invoiced yet, drives the pages through
the test client and checks the database as well as the answer.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal import billing_admin, invoices, ledger
from portal.models import (
    AuditLog,
    BillingModel,
    CreditNote,
    EntryKind,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    OutboxEmail,
    Plan,
    Role,
    Subscription,
    utcnow,
)
from tests.admin.helpers import make_tenant, reload
from tests.builders import PASSWORD, login, make_user
from tests.reliability.test_concurrency_pg import in_parallel
from tests.reliability.test_hostile_input import HOSTILE

HTMX = {"HX-Request": "true"}

INVOICE_MAIL = OutboxEmail.dedupe_key.like("invoice:%")  # not funds warnings etc.


def arrange(db) -> dict:
    plan = Plan(name="Complete", price_minor=4500, currency="GBP")
    db.add(plan)
    db.flush()
    acme = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    beta = make_tenant(db, name="Beta", admin_email="admin@beta.test")
    started = utcnow().date() - timedelta(days=3)
    started = started.replace(day=min(started.day, 28))  # an anchor day every month has
    for account in (acme.prepaid, acme.postpaid, beta.prepaid):
        db.add(
            Subscription(
                account_id=account.id, plan_id=plan.id, anchor_day=started.day, started_on=started
            )
        )
    acme.prepaid.name = "Prepaid Pat"
    acme.postpaid.name = "Postpaid Paula"
    db.commit()
    return {"acme": acme, "beta": beta}


@pytest.fixture
def tenants(db):
    return arrange(db)


@pytest.fixture
def admin(app, tenants):
    client = app.test_client()
    assert login(client, "admin@acme.test").status_code == 302
    return client


def invoices_of(db, account) -> list[Invoice]:
    reload(db)
    return list(db.scalars(select(Invoice).where(Invoice.account_id == account.id)))


def generate(admin, account):
    page = admin.get(f"/admin/billing/customers/{account.id}").get_data(as_text=True)
    period = page.split('name="period" value="')[1].split('"')[0]
    return admin.post(f"/admin/billing/customers/{account.id}/generate", data={"period": period})


def generated(admin, db, account) -> Invoice:
    assert generate(admin, account).status_code == 303
    (invoice,) = invoices_of(db, account)
    return invoice


# --- Review Billing Details ------------------------------------------------------------------


def test_review_every_due_account_with_totals_and_a_grand_total(admin, tenants):
    html = admin.get("/admin/billing").get_data(as_text=True)
    assert "Review Billing Details" in html and "Generate the Invoice" in html
    table = html.split('id="due-accounts"')[1].split("</table>")[0]
    assert "Prepaid Pat" in table and "Postpaid Paula" in table
    assert tenants["beta"].prepaid.name not in table  # another reseller's customer
    # Both periods started on the subscription's first day: the full £45.00 each, tax included.
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("£45.00") == 2 and body.count("£7.50") == 2
    grand = table.split("Grand total (GBP)")[1].split("</tr>")[0]
    assert "£90.00" in grand


def test_review_one_customer_shows_the_coming_invoice_lines(admin, tenants, db):
    account = tenants["acme"].postpaid
    response = admin.get(f"/admin/billing/customers/{account.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Complete plan" in html and "(in advance)" in html
    assert "Generate the Invoice" in html
    assert invoices_of(db, account) == []  # reviewing changes nothing
    assert admin.get(f"/admin/billing/customers/{tenants['beta'].prepaid.id}").status_code == 404


def test_review_by_account_number(admin, tenants):
    account = tenants["acme"].prepaid
    response = admin.get(f"/admin/billing/review?number={account.number}")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/billing/customers/{account.id}")
    foreign = admin.get(f"/admin/billing/review?number={tenants['beta'].prepaid.number}")
    assert foreign.status_code == 404
    assert "No customer has the account number" in foreign.get_data(as_text=True)


def test_customer_without_subscription_says_so(admin, db, tenants):
    db.execute(
        Subscription.__table__.delete().where(Subscription.account_id == tenants["acme"].prepaid.id)
    )
    db.commit()
    html = admin.get(f"/admin/billing/customers/{tenants['acme'].prepaid.id}").get_data(
        as_text=True
    )
    assert "no active subscription" in html


# --- Generate the Invoice ----------------------------------------------------------------------


def test_generate_one_makes_an_unsent_invoice_once(admin, db, tenants):
    account = tenants["acme"].postpaid
    review = admin.get(f"/admin/billing/customers/{account.id}").get_data(as_text=True)
    reviewed_total = review.split('id="review-total">')[1].split("<")[0]
    response = generate(admin, account)
    assert response.status_code == 303
    (invoice,) = invoices_of(db, account)
    assert reviewed_total == "£45.00" and invoice.total_minor == 4500  # what was reviewed
    assert response.headers["Location"].endswith(f"/admin/billing/invoices/{invoice.id}")
    assert invoice.sent_at is None and invoice.status == InvoiceStatus.OPEN
    assert (
        db.scalar(select(func.count(OutboxEmail.id)).where(INVOICE_MAIL)) == 0
    )  # sending is the next stage
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Generated INV-" in page and "Draft" in page and "Not sent yet" in page
    # Twice for the same period: the existing invoice, nothing new.
    again = admin.post(
        f"/admin/billing/customers/{account.id}/generate",
        data={"period": invoice.period_start.isoformat()},
    )
    assert again.status_code == 303
    assert "already been generated" in admin.get(again.headers["Location"]).get_data(as_text=True)
    assert len(invoices_of(db, account)) == 1
    assert db.scalar(select(AuditLog).where(AuditLog.action == "invoices.generate")) is not None
    assert ledger.audit_balances(db) == []


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("future", "has not started yet"),
        ("2026-13-45", "Not a valid date"),
        ("", "Review the billing details first."),
    ],
)
def test_generate_refuses_a_bad_period_and_changes_nothing(admin, db, tenants, period, message):
    account = tenants["acme"].prepaid
    if period == "future":
        period = (utcnow().date() + timedelta(days=40)).isoformat()
    response = admin.post(
        f"/admin/billing/customers/{account.id}/generate", data={"period": period}
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert invoices_of(db, account) == []
    assert db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.PLAN_FEE)) is None


def test_generate_htmx_follows_to_the_invoice(admin, db, tenants):
    account = tenants["acme"].prepaid
    page = admin.get(f"/admin/billing/customers/{account.id}").get_data(as_text=True)
    period = page.split('name="period" value="')[1].split('"')[0]
    response = admin.post(
        f"/admin/billing/customers/{account.id}/generate", data={"period": period}, headers=HTMX
    )
    (invoice,) = invoices_of(db, account)
    assert response.headers["HX-Redirect"] == f"/admin/billing/invoices/{invoice.id}"


def test_generate_every_due_account_reports_each_and_survives_a_failure(
    admin, db, tenants, monkeypatch
):
    failing = tenants["acme"].prepaid.id
    real = invoices.generate_for_account

    def flaky(db, *, account_id, **kwargs):
        if account_id == failing:
            raise RuntimeError("boom")
        return real(db, account_id=account_id, **kwargs)

    monkeypatch.setattr(invoices, "generate_for_account", flaky)
    response = admin.post("/admin/billing/generate", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html  # the fragment
    assert "2 accounts processed: 1 invoiced, 1 failed" in html
    assert "Generating failed unexpectedly" in html
    assert len(invoices_of(db, tenants["acme"].postpaid)) == 1
    assert invoices_of(db, tenants["acme"].prepaid) == []
    assert invoices_of(db, tenants["beta"].prepaid) == []  # another reseller's account
    # The failed account is still due; the rerun bills it and nobody twice.
    monkeypatch.setattr(invoices, "generate_for_account", real)
    html = admin.post("/admin/billing/generate").get_data(as_text=True)
    assert "1 account processed: 1 invoiced, 0 failed" in html
    assert len(invoices_of(db, tenants["acme"].prepaid)) == 1
    assert len(invoices_of(db, tenants["acme"].postpaid)) == 1
    assert "No account is due" in html
    assert ledger.audit_balances(db) == []


# --- Send out the Invoice ------------------------------------------------------------------------


def test_send_then_resend_queues_an_email_each_time(admin, db, tenants):
    account = tenants["acme"].postpaid
    invoice = generated(admin, db, account)
    url = f"/admin/billing/invoices/{invoice.id}"
    response = admin.post(f"{url}/send", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert f"sent to {account.email}" in html and "Resend the invoice" in html
    reload(db)
    assert db.get(Invoice, invoice.id).sent_at is not None
    mails = db.scalars(select(OutboxEmail).where(OutboxEmail.account_id == account.id)).all()
    assert len(mails) == 1 and invoices.invoice_number(invoice) in mails[0].subject
    assert f"/billing/invoices/{invoice.id}" in mails[0].body
    # A second plain send is refused (a double click); resend sends again.
    refused = admin.post(f"{url}/send", headers=HTMX).get_data(as_text=True)
    assert "already sent; resend it instead" in refused
    assert admin.post(f"{url}/send", data={"resend": "1"}).status_code == 303
    reload(db)
    assert db.scalar(select(func.count(OutboxEmail.id)).where(INVOICE_MAIL)) == 2
    actions = db.scalars(select(AuditLog.action).where(AuditLog.object_id == str(invoice.id)))
    assert list(actions).count("invoices.send") == 2


def test_send_all_unsent_sends_this_resellers_drafts_once(admin, app, db, tenants):
    for account in (tenants["acme"].prepaid, tenants["acme"].postpaid):
        generated(admin, db, account)
    other = app.test_client()
    login(other, "admin@beta.test")
    assert generate(other, tenants["beta"].prepaid).status_code == 303
    html = admin.get("/admin/billing").get_data(as_text=True)
    assert "2 generated invoices have not been sent yet" in html
    html = admin.post("/admin/billing/send-unsent").get_data(as_text=True)
    assert "2 invoices sent." in html and "Every generated invoice has been sent." in html
    reload(db)
    sent = {
        row.account_id for row in db.scalars(select(Invoice).where(Invoice.sent_at.is_not(None)))
    }
    assert sent == {tenants["acme"].prepaid.id, tenants["acme"].postpaid.id}
    assert "0 invoices sent." in admin.post("/admin/billing/send-unsent").get_data(as_text=True)
    assert db.scalar(select(func.count(OutboxEmail.id)).where(INVOICE_MAIL)) == 2


def test_a_void_invoice_cannot_be_sent(admin, db, tenants):
    invoice = generated(admin, db, tenants["acme"].postpaid)
    url = f"/admin/billing/invoices/{invoice.id}"
    assert admin.post(f"{url}/void", data={"reason": "Wrong plan"}).status_code == 303
    for data in ({}, {"resend": "1"}):
        response = admin.post(f"{url}/send", data=data)
        assert response.status_code == 422
        assert "A void invoice cannot be sent." in response.get_data(as_text=True)
    reload(db)
    assert db.scalar(select(func.count(OutboxEmail.id)).where(INVOICE_MAIL)) == 0
    assert db.get(Invoice, invoice.id).sent_at is None


# --- Void with a credit note ---------------------------------------------------------------------


def test_void_issues_a_numbered_credit_note_shown_to_admin_and_customer(app, admin, db, tenants):
    account = tenants["acme"].postpaid
    invoice = generated(admin, db, account)
    balance_before = db.get(type(account), account.id).balance_minor
    url = f"/admin/billing/invoices/{invoice.id}"
    response = admin.post(f"{url}/void", data={"reason": "Billed twice"}, headers=HTMX)
    html = response.get_data(as_text=True)
    number = f"CN-{tenants['acme'].reseller.id}-000001"
    assert f"credit note {number} issued" in html and "Billed twice" in html
    reload(db)
    assert db.get(Invoice, invoice.id).status == InvoiceStatus.VOID
    note = db.scalar(select(CreditNote))
    assert note.amount_minor == invoice.total_minor and note.reason == "Billed twice"
    assert db.get(type(account), account.id).balance_minor == balance_before + invoice.total_minor
    row = db.scalar(select(AuditLog).where(AuditLog.action == "invoices.void"))
    assert row.object_id == str(invoice.id) and "Billed twice" in row.after
    # The customer sees the credit note on the invoice page.
    user = make_user(db, account=account, email="paula@acme.test")
    db.commit()
    customer = app.test_client()
    login(customer, user.email)
    page = customer.get(f"/billing/invoices/{invoice.id}").get_data(as_text=True)
    assert number in page and "Billed twice" in page
    # Voiding again is refused and changes nothing.
    again = admin.post(f"{url}/void", data={"reason": "Again"})
    assert again.status_code == 422 and "already void" in again.get_data(as_text=True)
    reload(db)
    assert db.scalar(select(func.count(CreditNote.id))) == 1
    assert db.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "invoices.void")) == 1
    assert ledger.audit_balances(db) == []


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301])
def test_void_needs_a_reason(admin, db, tenants, reason):
    invoice = generated(admin, db, tenants["acme"].prepaid)
    response = admin.post(f"/admin/billing/invoices/{invoice.id}/void", data={"reason": reason})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Give a reason" in html or "under 300 characters" in html
    reload(db)
    assert db.get(Invoice, invoice.id).status != InvoiceStatus.VOID
    assert db.scalar(select(CreditNote)) is None
    assert db.scalar(select(AuditLog).where(AuditLog.action == "invoices.void")) is None


# --- The invoice list and its CSV ---------------------------------------------------------------


def list_numbers(admin, query: str = "", headers=None) -> list[str]:
    html = admin.get(f"/admin/billing/invoices{query}", headers=headers or {}).get_data(
        as_text=True
    )
    table = html.split('id="invoice-list"')[1].split("</table>")[0]
    return [part.split("<")[0] for part in table.split(">INV-")[1:]]


def test_list_filters_by_status_period_and_customer(admin, db, tenants):
    prepaid = generated(admin, db, tenants["acme"].prepaid)  # paid from the balance
    postpaid = generated(admin, db, tenants["acme"].postpaid)  # open
    admin.post(f"/admin/billing/invoices/{prepaid.id}/send")
    suffix = {i.id: invoices.invoice_number(i).removeprefix("INV-") for i in (prepaid, postpaid)}
    assert sorted(list_numbers(admin)) == sorted(suffix.values())
    assert list_numbers(admin, "?status=draft") == [suffix[postpaid.id]]
    assert list_numbers(admin, "?status=open") == [suffix[postpaid.id]]
    assert list_numbers(admin, "?status=paid") == [suffix[prepaid.id]]
    assert list_numbers(admin, "?status=overdue") == []
    month = prepaid.period_start.strftime("%Y-%m")
    assert len(list_numbers(admin, f"?period={month}")) == 2
    assert list_numbers(admin, "?period=2020-01") == []
    assert list_numbers(admin, "?customer=paula") == [suffix[postpaid.id]]
    number = tenants["acme"].prepaid.number
    assert list_numbers(admin, f"?customer={number}") == [suffix[prepaid.id]]
    admin.post(f"/admin/billing/invoices/{postpaid.id}/void", data={"reason": "x"})
    assert list_numbers(admin, "?status=void") == [suffix[postpaid.id]]
    assert list_numbers(admin, "?status=draft") == []  # void is not a draft
    # HTMX gets the table only.
    fragment = admin.get("/admin/billing/invoices?status=void", headers=HTMX)
    assert "<html" not in fragment.get_data(as_text=True)
    assert 'id="invoice-results"' in fragment.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=2999-01", "That period is in the future"),
        ("?period=nonsense", "Not a valid date"),
        ("?status=pending", "Not a valid choice"),
        ("?status=%20", "Not a valid choice"),
    ],
)
def test_list_refuses_bad_filters_with_a_message(admin, query, message):
    response = admin.get(f"/admin/billing/invoices{query}")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    csv_answer = admin.get(f"/admin/billing/invoices.csv{query}")
    assert csv_answer.status_code == 400 and message in csv_answer.get_data(as_text=True)


def test_list_pages(admin, db, tenants, monkeypatch):
    monkeypatch.setattr(billing_admin, "PAGE_SIZE", 1)
    generated(admin, db, tenants["acme"].prepaid)
    generated(admin, db, tenants["acme"].postpaid)
    first = admin.get("/admin/billing/invoices").get_data(as_text=True)
    assert "Next page" in first and "Previous page" not in first
    second = admin.get("/admin/billing/invoices?page=2").get_data(as_text=True)
    assert "Previous page" in second and "Next page" not in second
    assert list_numbers(admin) != list_numbers(admin, "?page=2")


def test_csv_export_is_filtered_tenant_scoped_and_formula_safe(app, admin, db, tenants):
    account = tenants["acme"].postpaid
    account.name = '=HYPERLINK("http://evil.example")'
    db.commit()
    invoice = generated(admin, db, account)
    generated(admin, db, tenants["acme"].prepaid)
    other = app.test_client()
    login(other, "admin@beta.test")
    generate(other, tenants["beta"].prepaid)
    response = admin.get("/admin/billing/invoices.csv?status=draft&customer=hyperlink")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][0] == "Invoice" and len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Invoice"] == invoices.invoice_number(invoice)
    assert row["Customer"].startswith("'=HYPERLINK")
    assert row["Status"] == "Draft"
    assert int(row["Total"].replace(".", "")) == invoice.total_minor
    everything = admin.get("/admin/billing/invoices.csv").get_data(as_text=True)
    assert everything.count("INV-") == 2  # not Beta's


def test_prepaid_and_postpaid_invoices_settle_as_the_model_says(admin, db, tenants):
    prepaid = generated(admin, db, tenants["acme"].prepaid)
    postpaid = generated(admin, db, tenants["acme"].postpaid)
    assert prepaid.status == InvoiceStatus.PAID and prepaid.paid_minor == prepaid.total_minor
    assert postpaid.status == InvoiceStatus.OPEN and postpaid.paid_minor == 0
    assert tenants["acme"].postpaid.billing_model == BillingModel.POSTPAID


def test_the_operator_bills_every_reseller(app, db, tenants):
    make_user(db, role=Role.OPERATOR, email="op@billing.test")
    db.commit()
    operator = app.test_client()
    login(operator, "op@billing.test")
    table = operator.get("/admin/billing").get_data(as_text=True).split('id="due-accounts"')[1]
    assert tenants["beta"].prepaid.name in table.split("</table>")[0]
    assert (
        generated(operator, db, tenants["beta"].prepaid).reseller_id == tenants["beta"].reseller.id
    )
    html = operator.get("/admin/billing/invoices").get_data(as_text=True)
    assert "<th>Reseller</th>" in html and "Beta" in html


@pytest.mark.postgres
def test_clicks_at_once_make_one_invoice_and_one_email(pg_app, pg_db):
    world = arrange(pg_db)
    account = world["acme"].postpaid
    clients = [pg_app.test_client() for _ in range(4)]
    for client in clients:
        login(client, "admin@acme.test")
    period = clients[0].get(f"/admin/billing/customers/{account.id}").get_data(as_text=True)
    period = period.split('name="period" value="')[1].split('"')[0]
    url = f"/admin/billing/customers/{account.id}/generate"
    clicks = [lambda c=c: c.post(url, data={"period": period}) for c in clients[:2]]
    clicks += [lambda c=c: c.post("/admin/billing/generate") for c in clients[2:]]
    responses = in_parallel(clicks)
    assert [r.status_code for r in responses] == [303, 303, 200, 200], responses
    (invoice,) = invoices_of(pg_db, account)
    assert len(invoices_of(pg_db, world["acme"].prepaid)) == 1
    sends = [lambda c=c: c.post(f"/admin/billing/invoices/{invoice.id}/send") for c in clients]
    statuses = sorted(r.status_code for r in in_parallel(sends))
    assert statuses == [303, 422, 422, 422]  # one sends, the others are told it went
    reload(pg_db)
    assert pg_db.scalar(select(func.count(OutboxEmail.id)).where(INVOICE_MAIL)) == 1
    assert ledger.audit_balances(pg_db) == []


def form_token(html: str, action: str) -> str:
    form = html.split(f'action="{action}"')[1]
    return form.split('name="csrf_token" value="')[1].split('"')[0]


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_every_billing_form_carries_its_csrf_token(app, db, tenants):
    admin = app.test_client()
    login_page = admin.get("/login").get_data(as_text=True)
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    signed_in = admin.post(
        "/login", data={"email": "admin@acme.test", "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 302
    account = tenants["acme"].postpaid
    review_url = f"/admin/billing/customers/{account.id}"
    generate_url = f"{review_url}/generate"
    html = admin.get(review_url).get_data(as_text=True)
    period = html.split('name="period" value="')[1].split('"')[0]
    assert admin.post(generate_url, data={"period": period}).status_code == 400
    assert invoices_of(db, account) == []  # refused without the token: nothing changed
    token = form_token(html, generate_url)
    response = admin.post(generate_url, data={"period": period, "csrf_token": token})
    assert response.status_code == 303
    (invoice,) = invoices_of(db, account)
    page = admin.get(f"/admin/billing/invoices/{invoice.id}").get_data(as_text=True)
    for action, data in (("send", {}), ("void", {"reason": "Duplicate"})):
        url = f"/admin/billing/invoices/{invoice.id}/{action}"
        assert admin.post(url, data=data).status_code == 400
        data["csrf_token"] = form_token(page, url)
        assert admin.post(url, data=data).status_code == 303, action
    for url in ("/admin/billing/generate", "/admin/billing/send-unsent"):
        overview = admin.get("/admin/billing").get_data(as_text=True)  # prepaid's draft to send
        assert admin.post(url).status_code == 400
        assert admin.post(url, data={"csrf_token": form_token(overview, url)}).status_code == 200
    reload(db)
    assert db.get(Invoice, invoice.id).status == InvoiceStatus.VOID
    (prepaid,) = invoices_of(db, tenants["acme"].prepaid)
    assert prepaid.sent_at is not None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HOSTILE, htmx=st.booleans())
def test_hostile_values_in_every_billing_input_never_500(admin, db, tenants, value, htmx):
    account = tenants["acme"].postpaid
    if not invoices_of(db, account):
        generated(admin, db, account)
    (invoice,) = invoices_of(db, account)
    headers = HTMX if htmx else {}
    base = f"/admin/billing/invoices/{invoice.id}"
    answers = [
        admin.post(f"{base}/void", data={"reason": value}, headers=headers),
        admin.post(f"{base}/send", data={"resend": value}, headers=headers),
        admin.post(
            f"/admin/billing/customers/{account.id}/generate",
            data={"period": value},
            headers=headers,
        ),
        admin.get("/admin/billing/review", query_string={"number": value}, headers=headers),
    ]
    for name in ("status", "period", "customer", "page"):
        for url in ("/admin/billing/invoices", "/admin/billing/invoices.csv"):
            answers.append(admin.get(url, query_string={name: value}, headers=headers))
    assert all(answer.status_code < 500 for answer in answers), [a.status_code for a in answers]
    reload(db)
    assert ledger.audit_balances(db) == []
    assert db.scalar(select(func.count(CreditNote.id))) <= 1
