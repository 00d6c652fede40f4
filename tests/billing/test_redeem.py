"""Redeem voucher: exactly one credit, one generic error, permission, lockout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal.models import (
    Account,
    CardStatus,
    EntryKind,
    LedgerEntry,
    RedeemFailure,
    TopupCard,
    User,
    utcnow,
)
from portal.vouchers import GENERIC_ERROR
from tests.billing.plan_helpers import HTMX, fund, make_card, reread
from tests.builders import login, make_customer, make_reseller, make_user

PIN = "5550001234"


@pytest.fixture
def setup(app, db):
    user = make_customer(db)
    account = db.get(Account, user.account_id)
    fund(db, account, 500)
    card = make_card(db, reseller_id=account.reseller_id, pin=PIN, amount_minor=2000)
    db.commit()
    return {"user": user, "account": account, "card": card}


def _redeem(client, pin, headers=HTMX, ip="127.0.0.1"):
    return client.post(
        "/billing/redeem", data={"pin": pin}, headers=headers, environ_base={"REMOTE_ADDR": ip}
    )


def _credited(db, account_id) -> int:
    return db.scalar(
        select(func.count(LedgerEntry.id)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.VOUCHER
        )
    )


def test_redeem_page_has_pin_field_and_button(client, setup):
    login(client, setup["user"].email)
    page = client.get("/billing/redeem")
    assert page.status_code == 200 and "<html" in page.text
    assert '<label for="pin">PIN' in page.text and ">Redeem</button>" in page.text


def test_success_credits_once_and_activates_the_card(client, db, setup):
    login(client, setup["user"].email)
    answer = _redeem(client, "555 000 1234")  # spaces as printed on the card are fine
    assert answer.status_code == 200 and "<html" not in answer.text
    assert (
        "£20.00 added" in answer.text
        and "Your new balance is <strong>£25.00</strong>" in answer.text
    )
    reread(db)
    card = db.get(TopupCard, setup["card"].id)
    assert card.status == CardStatus.ACTIVATED
    assert card.activated_account_id == setup["account"].id and card.activated_at is not None
    assert db.get(Account, setup["account"].id).balance_minor == 2500
    entry = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.VOUCHER))
    assert entry.idempotency_key == f"voucher:{card.id}" and entry.amount_minor == 2000
    # the same PIN again: the generic error, no second credit
    again = _redeem(client, PIN)
    assert GENERIC_ERROR in again.text
    reread(db)
    assert _credited(db, setup["account"].id) == 1


def test_success_without_htmx_redirects_with_the_amount(client, db, setup):
    login(client, setup["user"].email)
    answer = _redeem(client, PIN, headers={})
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"])
    assert "£20.00 added to your balance. Your new balance is £25.00." in page.text


def _other_reseller_card(db, setup):
    return make_card(db, reseller_id=make_reseller(db).id, pin="4440001111")


@pytest.mark.parametrize(
    ("case", "pin"),
    [
        ("unknown", "1234567890"),
        ("expired", "3330001111"),
        ("other reseller", "4440001111"),
        ("other currency", "6660001111"),
        ("letters", "abcdefgh"),
        ("negative", "-1"),
        ("nan", "NaN"),
        ("huge", "9" * 64),
    ],
)
def test_unredeemable_pins_get_one_generic_error(client, db, setup, case, pin):
    reseller_id = setup["account"].reseller_id
    make_card(db, reseller_id=reseller_id, pin="3330001111", expires_at=utcnow() - timedelta(1))
    _other_reseller_card(db, setup)
    make_card(db, reseller_id=reseller_id, pin="6660001111", currency="EUR")
    db.commit()
    login(client, setup["user"].email)
    answer = _redeem(client, pin)
    assert answer.status_code == 200
    assert GENERIC_ERROR in answer.text
    full = _redeem(client, pin, headers={})
    assert full.status_code == 422 and GENERIC_ERROR in full.text
    reread(db)
    assert db.get(Account, setup["account"].id).balance_minor == 500
    assert db.scalar(select(func.count(TopupCard.id)).where(TopupCard.status != "new")) == 0
    assert db.scalar(select(func.count(RedeemFailure.id))) == 2


def test_already_used_card_gets_the_generic_error(client, db, setup):
    db.execute(update(TopupCard).values(status=CardStatus.ACTIVATED))
    db.commit()
    login(client, setup["user"].email)
    assert GENERIC_ERROR in _redeem(client, PIN).text
    reread(db)
    assert _credited(db, setup["account"].id) == 0


@pytest.mark.parametrize("pin", ["", "   ", "1" * 65])
def test_empty_or_overlong_input_is_a_form_error(client, db, setup, pin):
    login(client, setup["user"].email)
    answer = _redeem(client, pin)
    assert answer.status_code == 200 and "field-error" in answer.text
    assert _redeem(client, pin, headers={}).status_code == 422
    reread(db)
    assert db.scalar(select(func.count(RedeemFailure.id))) == 0  # a form error is no attempt


def test_without_permission_the_page_is_403_and_nothing_changes(client, db, setup):
    user = db.get(User, setup["user"].id)
    user.can_redeem_vouchers = False
    db.commit()
    login(client, user.email)
    assert client.get("/billing/redeem").status_code == 403
    assert _redeem(client, PIN, headers={}).status_code == 403
    assert _redeem(client, PIN).status_code == 403
    reread(db)
    assert db.get(TopupCard, setup["card"].id).status == CardStatus.NEW
    assert _credited(db, setup["account"].id) == 0


def test_five_failures_lock_the_user_with_retry_after(client, db, setup):
    login(client, setup["user"].email)
    for n in range(5):
        assert GENERIC_ERROR in _redeem(client, f"11111111{n}", ip=f"10.0.0.{n}").text
    locked = _redeem(client, PIN, headers={}, ip="10.0.0.99")  # a new address, same user
    assert locked.status_code == 429
    assert 800 <= int(locked.headers["Retry-After"]) <= 900
    assert "Too many wrong PINs" in locked.text and "try again at" in locked.text
    htmx = _redeem(client, PIN, ip="10.0.0.99")
    assert htmx.status_code == 200 and "Retry-After" in htmx.headers
    reread(db)
    assert db.get(TopupCard, setup["card"].id).status == CardStatus.NEW  # even a right PIN waits
    # fifteen minutes later the user may try again
    db.execute(update(RedeemFailure).values(created_at=utcnow() - timedelta(minutes=16)))
    db.commit()
    assert "£20.00 added" in _redeem(client, PIN, ip="10.0.0.99").text


def test_five_failures_from_one_address_lock_other_users_there(client, db, setup):
    other = make_user(db, account=db.get(Account, setup["account"].id))
    db.commit()
    login(client, other.email)
    for n in range(5):
        _redeem(client, f"22222222{n}", ip="192.0.2.7")
    client.post("/logout")
    login(client, setup["user"].email)
    locked = _redeem(client, PIN, headers={}, ip="192.0.2.7")
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert "£20.00 added" in _redeem(client, PIN, ip="192.0.2.8").text


def test_four_failures_do_not_lock(client, db, setup):
    login(client, setup["user"].email)
    for n in range(4):
        _redeem(client, f"33333333{n}")
    assert "£20.00 added" in _redeem(client, PIN).text


def test_htmx_get_returns_the_fragment(client, setup):
    login(client, setup["user"].email)
    fragment = client.get("/billing/redeem", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="redeem-area"' in fragment.text
