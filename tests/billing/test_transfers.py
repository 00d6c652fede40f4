"""Transfer funds: same reseller and currency, both allowed, funds, both entries or none."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal import ledger, transfers
from portal.domain import ValidationFailed
from portal.models import (
    Account,
    BillingModel,
    EntryKind,
    LedgerEntry,
    TransferSetting,
)
from tests.billing.plan_helpers import HTMX, fund, reread
from tests.builders import login, make_account, make_customer_class, make_reseller, make_user

UNKNOWN = "No account with that number can receive transfers from you."


@pytest.fixture
def setup(app, db):
    reseller = make_reseller(db)
    allowed = make_customer_class(db, reseller=reseller, transfers_allowed=True)
    sender = make_account(db, reseller=reseller, customer_class_id=allowed.id, number="300001")
    recipient = make_account(
        db, reseller=reseller, transfers=TransferSetting.YES, number="300002", name="Rita"
    )
    user = make_user(db, account=sender)
    fund(db, sender, 1000)
    db.commit()
    return {"user": user, "sender": sender, "recipient": recipient, "reseller": reseller}


def _send(client, recipient="300002", amount="2.50", headers=HTMX, **extra):
    data = {"recipient": recipient, "amount": amount, "confirmed": "yes", **extra}
    return client.post("/billing/transfer", data=data, headers=headers)


def _balances(db, setup) -> tuple[int, int]:
    reread(db)
    return (
        db.get(Account, setup["sender"].id).balance_minor,
        db.get(Account, setup["recipient"].id).balance_minor,
    )


def _transfer_entries(db) -> int:
    return db.scalar(
        select(func.count(LedgerEntry.id)).where(
            LedgerEntry.kind.in_([EntryKind.TRANSFER_IN, EntryKind.TRANSFER_OUT])
        )
    )


def test_transfer_page_has_labelled_fields(client, setup):
    login(client, setup["user"].email)
    page = client.get("/billing/transfer")
    assert page.status_code == 200 and "<html" in page.text
    assert '<label for="recipient">Recipient account' in page.text
    assert '<label for="amount">Amount' in page.text and ">Review transfer</button>" in page.text


def test_the_first_step_reviews_both_accounts_and_the_amount_and_moves_nothing(client, db, setup):
    login(client, setup["user"].email)
    before = _balances(db, setup)
    review = _send(client, amount="2.50", confirmed="")
    assert review.status_code == 200
    text = review.text
    assert "Review the transfer" in text
    assert "Account 300001" in text and "Account 300002 (Rita)" in text
    assert ">Send £2.50 to 300002</button>" in text and ">Change</button>" in text
    assert _balances(db, setup) == before and _transfer_entries(db) == 0
    # Send posts the reviewed values with the same form key: the money moves once.
    key = re.search(r'name="request_id" value="([0-9a-f]+)"', text).group(1)
    assert _send(client, amount="2.50", request_id=key).status_code == 200
    assert _send(client, amount="2.50", request_id=key).status_code == 200
    assert _balances(db, setup) == (before[0] - 250, before[1] + 250)


def test_change_goes_back_to_the_filled_form_and_a_refused_review_says_why(client, db, setup):
    login(client, setup["user"].email)
    back = _send(client, amount="2.50", change="1")
    assert "Review the transfer" not in back.text and 'value="300002"' in back.text
    refused = _send(client, amount="99999", confirmed="")
    assert "Review the transfer" not in refused.text and "do not cover" in refused.text
    assert _transfer_entries(db) == 0


def test_transfer_moves_funds_with_both_entries(client, db, setup):
    login(client, setup["user"].email)
    answer = _send(client)
    assert answer.status_code == 200 and "<html" not in answer.text
    assert "£2.50 sent to account 300002 (Rita). Your balance is now £7.50." in answer.text
    assert _balances(db, setup) == (750, 250)
    out = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.TRANSFER_OUT))
    into = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.TRANSFER_IN))
    assert (out.amount_minor, into.amount_minor) == (-250, 250)
    assert out.reference == "300002" and into.reference == "300001"
    assert ledger.audit_balances(db) == []


def test_transfer_without_htmx_redirects(client, db, setup):
    login(client, setup["user"].email)
    answer = _send(client, headers={})
    assert answer.status_code == 303
    assert "£2.50 sent to account 300002" in client.get(answer.headers["Location"]).text


def test_double_submit_transfers_once(client, db, setup):
    login(client, setup["user"].email)
    _send(client, request_id="c" * 32)
    _send(client, request_id="c" * 32)
    assert _balances(db, setup) == (750, 250)
    assert _transfer_entries(db) == 2


def test_whole_available_funds_may_be_sent_but_not_more(client, db, setup):
    login(client, setup["user"].email)
    refused = _send(client, amount="10.01")
    assert "Your available funds (£10.00) do not cover £10.01." in refused.text
    assert _balances(db, setup) == (1000, 0)
    _send(client, amount="10.00")
    assert _balances(db, setup) == (0, 1000)


def test_postpaid_sender_may_use_the_credit_limit(client, db, setup):
    sender = db.get(Account, setup["sender"].id)
    sender.billing_model = BillingModel.POSTPAID
    sender.credit_limit_minor = 500
    db.commit()
    login(client, setup["user"].email)
    _send(client, amount="15.00")
    assert _balances(db, setup) == (-500, 1500)
    assert "do not cover" in _send(client, amount="0.01").text


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "Enter a positive amount."),
        ("0", "Enter an amount greater than zero."),
        ("0.00", "Enter an amount greater than zero."),
        ("NaN", "Enter a plain number"),
        ("Infinity", "Enter a plain number"),
        ("1e3", "Enter a plain number"),
        ("99999999999999", "Enter an amount up to"),
        ("1.234", "Use at most 2 decimals for GBP."),
        ("", "Enter an amount."),
        ("abc", "Enter a plain number"),
    ],
)
def test_bad_amounts_are_refused_inline(client, db, setup, amount, message):
    login(client, setup["user"].email)
    answer = _send(client, amount=amount)
    assert answer.status_code == 200 and message in answer.text and "field-error" in answer.text
    assert _send(client, amount=amount, headers={}).status_code == 422
    assert _balances(db, setup) == (1000, 0)
    assert _transfer_entries(db) == 0


def test_unknown_and_other_reseller_recipients_get_one_message(client, db, setup):
    elsewhere = make_reseller(db)
    make_account(db, reseller=elsewhere, transfers=TransferSetting.YES, number="400001")
    db.commit()
    login(client, setup["user"].email)
    for number in ("400001", "999999", "x" * 40, " ", "'; drop table accounts; --"):
        answer = _send(client, recipient=number)
        assert answer.status_code == 200
        assert answer.status_code == 200 and "field-error" in answer.text
    assert UNKNOWN in _send(client, recipient="400001").text
    assert UNKNOWN in _send(client, recipient="999999").text
    assert "You cannot transfer to your own account." in _send(client, recipient="300001").text
    assert _balances(db, setup) == (1000, 0)
    assert _transfer_entries(db) == 0


def _set(db, account_id, **fields):
    account = db.get(Account, account_id)
    for name, value in fields.items():
        setattr(account, name, value)
    db.commit()


def test_sender_setting_no_refuses(client, db, setup):
    _set(db, setup["sender"].id, transfers=TransferSetting.NO)
    login(client, setup["user"].email)
    assert "Your account is not allowed to transfer funds." in _send(client).text
    assert _balances(db, setup) == (1000, 0)


def test_recipient_class_without_transfers_refuses(client, db, setup):
    closed = make_customer_class(db, reseller=setup["reseller"], transfers_allowed=False)
    _set(db, setup["recipient"].id, transfers=TransferSetting.CLASS, customer_class_id=closed.id)
    login(client, setup["user"].email)
    assert "Account 300002 is not allowed to receive transfers." in _send(client).text
    assert _balances(db, setup) == (1000, 0)


def test_class_setting_without_a_class_means_not_allowed(client, db, setup):
    _set(db, setup["recipient"].id, transfers=TransferSetting.CLASS, customer_class_id=None)
    login(client, setup["user"].email)
    assert "not allowed to receive transfers" in _send(client).text
    assert _balances(db, setup) == (1000, 0)


def test_recipient_in_another_currency_refuses(client, db, setup):
    _set(db, setup["recipient"].id, currency="EUR")
    login(client, setup["user"].email)
    assert "transfers need the same currency" in _send(client).text
    assert _balances(db, setup) == (1000, 0)


@pytest.mark.parametrize("amount", [0, -1, True])
def test_domain_refuses_non_positive_amounts(app, db, setup, amount):
    with pytest.raises(ValidationFailed):
        transfers.transfer_funds(
            db,
            sender_account=setup["sender"],
            recipient_number="300002",
            amount_minor=amount,
            actor_user_id=None,
            idempotency_key="k",
        )


def test_htmx_get_returns_the_fragment(client, setup):
    login(client, setup["user"].email)
    fragment = client.get("/billing/transfer", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="transfer-area"' in fragment.text
    assert 'id="transfer-available">£10.00<' in fragment.text
